"""``python -m bench.passthrough_app [--id N] [--stock]``: the baselines for ``bench_worker.py``.

A plain Faust app with one agent that consumes the inputs topic as raw bytes
and sends each record unchanged (same key, same value, same partition number) to
the decisions topic.

- tuned (default): built with the worker's own broker settings and transport
  (``faust_settings`` + ``install_transport``: 100 ms fetch wait, 512 KiB producer
  batches, librdkafka sends, the task-free drain loop, same timeouts and commit
  interval), so the only difference from ``python -m agents.worker`` is the work done
  per record: decode, book, features, policy, tables, two sends;
- ``--stock``: what a user would write first: ``faust.App(id, broker=...)`` with
  faust-streaming's defaults and its own aiokafka transport, none of the project's.

Settings come from ``RLSIZER_*`` like the worker's.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from config.settings import Settings


def create_passthrough_app(settings: Settings, *, worker_id: str, stock: bool = False) -> Any:
    import faust

    from agents.glue.faust.transport import faust_settings, install_transport, worker_datadir

    datadir = worker_datadir(settings, worker_id)
    datadir.mkdir(parents=True, exist_ok=True)
    name = f"{settings.topic_prefix or 'rlsizer'}-passthrough"
    if stock:
        app = faust.App(
            name,
            broker=f"kafka://{settings.kafka_bootstrap}",
            datadir=str(datadir),
            web_enabled=False,
            key_serializer="raw",
            value_serializer="raw",
            consumer_auto_offset_reset="earliest",
        )
    else:
        app = faust.App(name, **faust_settings(settings, worker_id=worker_id))
        install_transport(app, settings)
    source = app.topic(
        settings.topic("inputs"), key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    sink = app.topic(settings.topic("decisions"), key_serializer="raw", value_serializer="raw")

    @app.agent(source, name="passthrough")
    async def passthrough(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            await sink.send(key=m.key, value=m.value, partition=m.partition)

    return app


def main(argv: list[str] | None = None) -> int:
    from agents.glue.faust.transport import faust_worker

    parser = argparse.ArgumentParser(prog="python -m bench.passthrough_app", description=__doc__.splitlines()[0])
    parser.add_argument("--id", default="passthrough", help="worker id: names its data dir")
    parser.add_argument("--loglevel", default="warning")
    parser.add_argument(
        "--stock", action="store_true", help="faust-streaming as it comes, without the project's transport"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.loglevel.upper())
    app = create_passthrough_app(Settings.from_env(), worker_id=str(args.id), stock=args.stock)
    if args.stock:
        from faust.worker import Worker

        Worker(app, loglevel=args.loglevel, quiet=True, redirect_stdouts=False).execute_from_commandline()
    else:
        faust_worker(app, loglevel=args.loglevel).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
