"""The long-running rlsizer processes that ``rlsizer up`` (and the demo) start next to the stack.

Each starter takes the stack's settings and returns a started, ready ``ManagedProcess``
(it dies with its parent). The same commands run one per container in docker-compose.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from config.settings import Settings
from rlsizer.stack.processes import ManagedProcess, spawn, wait_ready

READY_TIMEOUT = 90.0


def _log_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "logs"


def _rlsizer(settings: Settings, name: str, *args: str) -> ManagedProcess:
    return spawn(name, [sys.executable, "-m", "rlsizer", *args], _log_dir(settings) / f"{name}.log", settings.to_env())


def start_worker(settings: Settings, *, worker_id: str = "0", timeout: float = READY_TIMEOUT) -> ManagedProcess:
    """One Faust worker; ready when Faust reports it has joined and recovered its tables."""
    proc, ready = spawn_worker(settings, worker_id=worker_id)
    wait_ready(proc, ready, timeout, "report ready")
    return proc


def spawn_worker(settings: Settings, *, worker_id: str = "0") -> tuple[ManagedProcess, Callable[[], bool]]:
    """One Faust worker, started, and what tells it is ready (``wait_ready``).

    The log is appended to, so a restarted worker is ready at a "Ready" line after its
    own start, not at its predecessor's.
    """
    log_path = _log_dir(settings) / f"worker-{worker_id}.log"
    start = log_path.stat().st_size if log_path.exists() else 0
    proc = _rlsizer(settings, f"worker-{worker_id}", "worker", "--id", worker_id)

    def ready() -> bool:
        with open(log_path, "rb") as log:
            log.seek(start)
            return b"[^Worker]: Ready" in log.read()

    return proc, ready


def worker_stuck_probe(
    settings: Settings, *, silent_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic
) -> Callable[[], str | None]:
    """What tells ``rlsizer up`` its worker is alive but stuck: its ``/health`` reports a stall
    (``agents.glue.watchdog``), or has not answered for ``silent_seconds`` (a wedged event loop)."""
    url = f"http://{settings.worker_web_host}:{settings.worker_web_port}/health"
    failing_since: list[float] = []

    def stuck() -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=3) as answer:
                state = json.loads(answer.read())
        except (OSError, ValueError) as exc:
            if not failing_since:
                failing_since.append(clock())
            silent = clock() - failing_since[0]
            return f"its /health has not answered for {silent:.0f} s ({exc})" if silent >= silent_seconds else None
        failing_since.clear()
        if state.get("status") == "stalled":
            return str(state.get("progress", "stalled"))
        return None

    return stuck


def start_trainer(settings: Settings) -> ManagedProcess:
    """The trainer service: a round every RLSIZER_TRAIN_INTERVAL_SECONDS once enough new outcomes arrived."""
    return _rlsizer(settings, "trainer", "trainer")


def start_monitor(settings: Settings) -> ManagedProcess:
    """The health monitor: every check on its interval, recovery actions, HealthChecked events."""
    return _rlsizer(settings, "monitor", "monitor")


DEFAULT_SERVICES = (start_worker, start_trainer, start_monitor)
