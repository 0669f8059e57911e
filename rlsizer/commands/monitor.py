"""``rlsizer monitor``: the 24/7 health monitor (checks, recovery, ``HealthChecked`` events)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from config.settings import Settings
from rlsizer.stack.processes import StackError
from streams.stop_flag import StopFlag, stop_on_signals

log = logging.getLogger("rlsizer.monitor")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "monitor", help="run the health monitor: every check on its interval, with self-recovery"
    )
    parser.add_argument("--once", action="store_true", help="run every check once, recover, publish, exit")
    parser.set_defaults(func=run, kafka_logs=True)


def build_monitor(settings: Settings) -> Any:
    from agents import health  # lazy: keeps `rlsizer --help` fast
    from models import ModelRegistry  # lazy: keeps `rlsizer --help` fast
    from models.events import KafkaModelEvents  # lazy: keeps `rlsizer --help` fast
    from models.store import make_s3_client  # lazy: keeps `rlsizer --help` fast
    from rlsizer.health import recovery  # lazy: keeps `rlsizer --help` fast
    from rlsizer.health.monitor import HealthMonitor  # lazy: keeps `rlsizer --help` fast
    from rlsizer.health.probes import standard_checks  # lazy: keeps `rlsizer --help` fast
    from streams.codec_factory import make_codec  # lazy: keeps `rlsizer --help` fast
    from streams.producer import EventProducer, make_producer  # lazy: keeps `rlsizer --help` fast

    def registry() -> Any:
        return ModelRegistry.from_settings(settings)

    producer = EventProducer(make_producer(settings), make_codec(settings), settings)

    def publish(event: Any) -> None:
        producer.send(event)
        producer.flush(10)

    checks = standard_checks(settings, s3_client_factory=lambda: make_s3_client(settings), registry_factory=registry)
    models_sink = KafkaModelEvents(settings)
    actions = {
        health.ACTION_RESTORE_MODEL: lambda: recovery.restore_models(settings, registry),
        health.ACTION_REFRESH_MODEL: lambda: recovery.refresh_champion(settings, registry, models_sink),
        health.ACTION_CLEAN_DISK: lambda: recovery.clean_disk(settings, registry),
        health.ACTION_RETRY_TRAINING: lambda: recovery.training_retry_note(settings),
    }
    return HealthMonitor(checks=checks, publish=publish, actions=actions)


def run(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    monitor = build_monitor(settings)
    if args.once:
        for e in monitor.run_all():
            print(f"{e.status:<5} {e.component:<9} {e.check:<18} {e.detail}{'  -> ' + e.action if e.action else ''}")
        return 1 if monitor.overall() == "FAIL" else 0
    stop = StopFlag()  # set by SIGTERM/SIGINT; not threading.Event (streams.stop_flag)
    stop_on_signals(stop)
    server = None
    if settings.monitor_web_port > 0:
        from rlsizer.health.metrics import serve  # lazy: keeps `rlsizer --help` fast

        try:
            server = serve(monitor, settings.monitor_web_host, settings.monitor_web_port)
        except OSError as exc:
            raise StackError(
                f"cannot serve health metrics on {settings.monitor_web_host}:{settings.monitor_web_port}"
                f" (RLSIZER_MONITOR_WEB_PORT): {exc.strerror or exc}"
            ) from None
        log.info("health status on http://%s:%d/metrics", settings.monitor_web_host, settings.monitor_web_port)
    log.info("health monitor running; checks every %.0f s", settings.health_interval_seconds)
    while not stop.is_set():
        monitor.run_due()
        stop.wait(max(1.0, monitor.seconds_until_next()))
    if server is not None:
        server.shutdown()
    log.info("health monitor stopped")
    return 0
