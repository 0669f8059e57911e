"""``rlsizer worker [--id N]``: one Faust worker (sizing decisions, features, hot swap)."""

from __future__ import annotations

import argparse
from typing import Any

from config.settings import Settings


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "worker", help="run a Faust worker: features, sizing decisions, model hot swap"
    )
    parser.add_argument("--id", default="0", help="worker id (names its data dir; unique per machine)")
    parser.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    parser.set_defaults(func=_run, kafka_logs=True)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from agents.worker import run_worker  # lazy: keeps `rlsizer --help` fast

    return run_worker(settings, worker_id=str(args.id), loglevel=args.loglevel)
