"""``python -m bench.passthrough_app [--id N]``: the baseline for ``bench_worker.py``.

A plain Faust app with one agent that consumes the signals topic as raw bytes
and sends each record unchanged (same key, same value, same partition number) to
the decisions topic. It is built with the worker's own broker settings and
transport (``faust_settings`` + ``install_transport``: 100 ms fetch wait, 512 KiB
producer batches, same timeouts and commit interval), so the only difference from
``python -m agents.worker`` is the work done per record: decode, features, policy,
state tables, two sends. Settings come from ``RLSIZER_*`` like the worker's.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from streams.settings import Settings


def create_passthrough_app(settings: Settings, *, worker_id: str) -> Any:
    import faust

    from agents.glue.transport import faust_settings, install_transport, worker_datadir

    worker_datadir(settings, worker_id).mkdir(parents=True, exist_ok=True)
    app = faust.App(f"{settings.topic_prefix or 'rlsizer'}-passthrough", **faust_settings(settings, worker_id=worker_id))
    install_transport(app, settings)
    source = app.topic(settings.topic("signals"), key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    sink = app.topic(settings.topic("decisions"), key_serializer="raw", value_serializer="raw")

    @app.agent(source, name="passthrough")
    async def passthrough(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            await sink.send(key=m.key, value=m.value, partition=m.partition)

    return app


def main(argv: list[str] | None = None) -> int:
    from agents.glue.transport import faust_worker

    parser = argparse.ArgumentParser(prog="python -m bench.passthrough_app", description=__doc__.splitlines()[0])
    parser.add_argument("--id", default="passthrough", help="worker id: names its data dir")
    parser.add_argument("--loglevel", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.loglevel.upper())
    app = create_passthrough_app(Settings.from_env(), worker_id=str(args.id))
    faust_worker(app, loglevel=args.loglevel).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
