"""``rlsizer up``: run the embedded stack in the foreground until Ctrl-C or SIGTERM.

Starts SeaweedFS, tansu on it, the topics, the schema registry and the models
bucket (``EmbeddedStack``), then the ``EXTRA_SERVICES``; prints the endpoints and
the ``export RLSIZER_...`` lines clients need; supervises every process
(``rlsizer.stack.supervise``): a service that dies (worker, trainer, monitor) is started
again with backoff; if a server dies (SeaweedFS, tansu, the registry), it says which
(with its log tail), stops the rest and exits 1. The data dir
keeps the events (tansu stores them in SeaweedFS there), so a second ``up`` on it
continues where the first stopped.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from config.settings import Settings
from rlsizer.stack.embedded import KAFKA_BUCKET, EmbeddedStack, StackPorts
from rlsizer.stack.processes import ManagedProcess, SeaweedPorts, require_free
from rlsizer.stack.services import DEFAULT_SERVICES, start_worker, worker_stuck_probe
from rlsizer.stack.supervise import Process, Supervisor

ServiceStarter = Callable[[Settings], ManagedProcess]

# Services started after the stack (rlsizer.stack.services): the worker, the trainer service and
# the health monitor. Each receives the stack's settings and returns a started, ready
# ManagedProcess that dies with `up`; one that dies is started again (rlsizer.stack.supervise); stopped
# before the stack. `--stack-only` starts none of them.
EXTRA_SERVICES: tuple[ServiceStarter, ...] = DEFAULT_SERVICES

EXIT_SERVER_DIED = 1
POLL_SECONDS = 0.2


class Terminated(BaseException):
    """SIGTERM or SIGINT arrived; unwinds start-up or supervision to a clean stop."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "up",
        help="run the embedded stack (Kafka, registry, S3) with a worker, the trainer and the monitor until Ctrl-C",
        description=(__doc__ or "").replace("``", ""),
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where events, models and logs live (default: RLSIZER_DATA_DIR or ./.rlsizer)",
    )
    p.add_argument("--memory", action="store_true", help="keep Kafka topics in memory only (lost on stop)")
    p.add_argument(
        "--stack-only", action="store_true", help="start only Kafka, registry and S3 (no worker, trainer or monitor)"
    )
    p.add_argument("--kafka-port", type=int, default=None, help="default: port of RLSIZER_KAFKA_BOOTSTRAP or 9092")
    p.add_argument("--registry-port", type=int, default=None, help="default: port of RLSIZER_REGISTRY_URL or 8081")
    p.add_argument("--s3-port", type=int, default=None, help="default: port of RLSIZER_S3_ENDPOINT or 8333")
    p.add_argument(
        "--worker-web-port",
        type=int,
        default=None,
        help="worker /health and /metrics (default: RLSIZER_WORKER_WEB_PORT or 6066; 0 disables)",
    )
    internal = p.add_argument_group("SeaweedFS internal ports (each also uses port+10000 for gRPC)")
    defaults = SeaweedPorts()
    for name in ("master", "volume", "filer", "admin"):
        internal.add_argument(f"--seaweed-{name}-port", type=int, default=getattr(defaults, name), metavar="PORT")
    p.set_defaults(func=run, kafka_logs=True)


def _port_of(url: str, fallback: int) -> int:
    try:
        return urlsplit(url if "//" in url else f"//{url}").port or fallback
    except ValueError:
        return fallback


def stack_ports(args: argparse.Namespace, settings: Settings) -> StackPorts:
    defaults = StackPorts()
    seaweed = SeaweedPorts(
        s3=args.s3_port or _port_of(settings.s3_endpoint, defaults.seaweed.s3),
        master=args.seaweed_master_port,
        volume=args.seaweed_volume_port,
        filer=args.seaweed_filer_port,
        admin=args.seaweed_admin_port,
    )
    return StackPorts(
        kafka=args.kafka_port or _port_of(settings.kafka_bootstrap, defaults.kafka),
        registry=args.registry_port or _port_of(settings.registry_url, defaults.registry),
        seaweed=seaweed,
    )


def client_exports(settings: Settings) -> list[str]:
    """The ``export`` lines a client shell needs to talk to this stack (the secret only if it is the local default)."""
    lines = [
        f"export RLSIZER_KAFKA_BOOTSTRAP={settings.kafka_bootstrap}",
        f"export RLSIZER_REGISTRY_URL={settings.registry_url}",
        f"export RLSIZER_S3_ENDPOINT={settings.s3_endpoint}",
        f"export RLSIZER_S3_ACCESS_KEY={settings.s3_access_key}",
        f"export RLSIZER_S3_BUCKET={settings.s3_bucket}",
        f"export RLSIZER_DATA_DIR={settings.data_dir}",
    ]
    if settings.s3_secret_key == Settings().s3_secret_key:
        lines.append(f"export RLSIZER_S3_SECRET_KEY={settings.s3_secret_key}")
    else:
        lines.append("# RLSIZER_S3_SECRET_KEY (or RLSIZER_S3_SECRET_KEY_FILE): the value this process was given")
    return lines


def describe(stack: EmbeddedStack, processes: Sequence[Process]) -> str:
    s = stack.settings
    rows = [
        ("Kafka bootstrap", s.kafka_bootstrap + ("  (memory storage: lost on stop)" if stack.memory else "")),
        ("Schema registry", s.registry_url),
        ("S3 endpoint", f"{s.s3_endpoint}  (buckets {s.s3_bucket}, {KAFKA_BUCKET})"),
        ("Data dir", str(stack.data_dir)),
        ("Logs", str(stack.log_dir)),
    ]
    lines = ["rlsizer stack is up"] + [f"  {k:<16} {v}" for k, v in rows]
    lines += [f"  {'process':<16} {p.name} pid {p.pid}" for p in processes]
    lines += ["", "Client environment:", *client_exports(s), "", "Ctrl-C or SIGTERM stops everything."]
    return "\n".join(lines)


@contextmanager
def _terminate_on_signals() -> Iterator[Callable[[], None]]:
    """SIGTERM/SIGINT raise ``Terminated``; the yielded callable makes later signals no-ops (for cleanup)."""

    def raise_terminated(signum: int, _frame: object) -> None:
        raise Terminated(signal.Signals(signum).name)

    def ignore(_signum: int, _frame: object) -> None:
        return None

    previous = {sig: signal.signal(sig, raise_terminated) for sig in (signal.SIGTERM, signal.SIGINT)}

    def shield() -> None:
        for sig in previous:
            signal.signal(sig, ignore)

    try:
        yield shield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def first_dead_server(supervisor: Supervisor) -> Any:
    """Supervise until a server exits and return it (returns only by that or by ``Terminated``)."""
    while (dead := supervisor.check()) is None:
        time.sleep(POLL_SECONDS)
    return dead


def run(
    args: argparse.Namespace, settings: Settings, extra_services: tuple[ServiceStarter, ...] = EXTRA_SERVICES
) -> int:
    data_dir = args.data_dir or settings.data_dir
    if args.worker_web_port is not None:
        settings = replace(settings, worker_web_port=args.worker_web_port)
    if not args.stack_only and settings.worker_web_port > 0:
        require_free("worker web (/health, /metrics)", settings.worker_web_port)
    stack = EmbeddedStack(data_dir, ports=stack_ports(args, settings), memory=args.memory, base=settings)
    services: list[tuple[Callable[[], ManagedProcess], ManagedProcess]] = []
    supervisor: Supervisor | None = None
    with _terminate_on_signals() as shield:
        try:
            stack.start()
            probes = {}
            for start in () if args.stack_only else extra_services:
                again = partial(start, stack.settings)
                if start is start_worker and stack.settings.worker_web_port > 0:  # a stalled worker is restarted
                    probes[len(services)] = worker_stuck_probe(stack.settings)
                services.append((again, again()))
            supervisor = Supervisor(stack.processes, services, probes=probes)
            print(describe(stack, supervisor.processes()), flush=True)
            dead = first_dead_server(supervisor)
            print(
                f"rlsizer up: {dead.name} (pid {dead.pid}) stopped unexpectedly with code {dead.popen.returncode}; "
                f"stopping the rest. Log {dead.log_path}:\n{dead.log_tail()}",
                file=sys.stderr,
                flush=True,
            )
            return EXIT_SERVER_DIED
        except Terminated as why:
            print(f"rlsizer up: {why}, stopping", file=sys.stderr, flush=True)
            return 0
        finally:
            shield()
            running = [s.proc for s in supervisor.services] if supervisor else [proc for _, proc in services]
            for proc in reversed(running):
                proc.stop()  # type: ignore[attr-defined]
            stack.stop()
            print("rlsizer up: stopped", file=sys.stderr, flush=True)
