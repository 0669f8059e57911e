"""``python -m agents.worker [--id N]``: run one Faust worker process with settings from ``RLSIZER_*``."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
from dataclasses import replace
from typing import Any

from agents.health import worker_report_key
from config.settings import Settings
from streams.dir_lock import DirInUse, DirLock


def run_worker(settings: Settings, *, worker_id: str, loglevel: str = "info") -> int:
    """Run the worker until it stops; ``DirInUse`` at once if another live worker has this id's data dir.

    The data dir (model cache, Faust data) is locked for the life of the process, so two
    workers never share one by accident (same ``--id`` on one machine or volume), and the
    monitor's ``clean_disk`` can tell the dirs of workers that are gone from live ones.
    """
    from agents.glue.faust.transport import (  # lazy: loads faust, confluent-kafka, pyarrow only when used
        faust_worker,
        worker_datadir,
    )

    with DirLock(worker_datadir(settings, worker_id), holder=f"another worker with id {worker_id!r}"):
        app, poller = build_serving_app(settings, worker_id=worker_id)
        poller.start()
        try:
            faust_worker(
                app, loglevel=loglevel
            ).execute_from_commandline()  # returns when the worker stops (it calls sys.exit)
        finally:
            poller.stop()
    return 0


def build_serving_app(settings: Settings, *, worker_id: str) -> tuple[Any, Any]:
    """The worker app serving verified models only: registry + local cache + champion poller.

    The loader and the poller report on the health topic, keyed ``worker/<id>`` and with
    the worker named in the detail, so ``rlsizer health`` can tell the workers' reports
    apart; the worker's ``/health`` shows the latest one.
    """

    from agents.app import create_app  # lazy: loads onnxruntime, onnx, faust only when used
    from agents.glue.verified_models import (  # lazy: loads boto3, confluent-kafka, pyarrow only when used
        ChampionPoller,
        VerifiedLoader,
        model_cache_dir,
    )
    from agents.sizing import PolicySlot  # lazy: loads onnxruntime, onnx, pyarrow only when used
    from models import ModelRegistry  # lazy: loads boto3, confluent-kafka, pyarrow only when used
    from models.cache import ModelCache  # lazy: loads boto3, confluent-kafka, pyarrow only when used
    from streams.codec_factory import make_codec  # lazy: loads confluent-kafka, pyarrow, numpy only when used
    from streams.producer import (  # lazy: loads confluent-kafka, pyarrow, numpy only when used
        EventProducer,
        make_producer,
    )

    codec = make_codec(settings)
    health = EventProducer(make_producer(settings), codec, settings)
    health_topic = settings.topic("health")
    metrics: list[Any] = []  # the app's WorkerMetrics, once the app is built

    def report(event: Any) -> None:
        event = replace(event, detail=f"worker {worker_id}: {event.detail}")
        for m in metrics:
            m.model_checked(event)
        try:
            health.send_raw(health_topic, worker_report_key(worker_id), codec.encode(health_topic, event))
            health.flush(5)
        except Exception:  # health reporting must never stop serving
            logging.getLogger(__name__).exception("could not publish %s/%s", event.component, event.check)

    cache = ModelCache(model_cache_dir(settings, worker_id), ModelRegistry.from_settings(settings))
    slot = PolicySlot()
    app = create_app(
        settings, worker_id=worker_id, slot=slot, codec=codec, load_model=VerifiedLoader(cache, report, slot=slot)
    )
    metrics.append(app.rlsizer_metrics)  # type: ignore[attr-defined]  # set by create_app
    return app, ChampionPoller(settings, cache, slot, report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.worker", description=__doc__)
    parser.add_argument("--id", default="0", help="worker id: names its data dir and Faust client")
    parser.add_argument("--loglevel", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.loglevel.upper())
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` dumps every thread's stack to stderr

    try:
        return run_worker(Settings.from_env(), worker_id=str(args.id), loglevel=args.loglevel)
    except DirInUse as exc:
        print(f"agents.worker: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
