"""``rlsizer replay [--warehouse PATH] [--rebuild]``: bring the DuckDB warehouse up to the end of every topic.

Decodes with the schema registry at ``RLSIZER_REGISTRY_URL``; reads from the
offsets stored in the warehouse, so running it again adds only what is new.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from config.settings import Settings
from streams.codec_factory import make_codec

EXIT_FAILED = 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("replay", help="replay the Kafka topics into the DuckDB warehouse")
    parser.add_argument(
        "--warehouse", type=Path, default=None, help="DuckDB file (default: $RLSIZER_DATA_DIR/warehouse.duckdb)"
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="move the existing warehouse aside and replay from the beginning"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.set_defaults(func=run)


def kafka_hint(exc: BaseException, settings: Settings) -> str:
    """Where the broker was looked for, when ``exc`` came from Kafka (appended to the one-line error)."""
    from confluent_kafka import KafkaException  # lazy: keeps `rlsizer --help` fast

    if isinstance(exc, KafkaException) or isinstance(exc.__cause__, KafkaException):
        return f" (Kafka at {settings.kafka_bootstrap}, RLSIZER_KAFKA_BOOTSTRAP)"
    return ""


def run(args: argparse.Namespace, settings: Settings) -> int:
    from trainer.warehouse.replay import ReplayError, replay  # lazy: keeps `rlsizer --help` fast
    from trainer.warehouse.store import WarehouseError, default_path  # lazy: keeps `rlsizer --help` fast

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    codec = make_codec(settings)
    path = args.warehouse or default_path(settings.data_dir)
    try:
        stats = replay(settings, codec, warehouse_path=path, progress=args.progress, rebuild=args.rebuild)
    except (ReplayError, WarehouseError) as exc:
        print(f"rlsizer replay: {exc}{kafka_hint(exc, settings)}", file=sys.stderr)
        return EXIT_FAILED
    print(f"warehouse: {path}")
    print(stats.summary())
    return 0
