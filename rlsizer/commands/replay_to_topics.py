"""``rlsizer replay-to-topics --from T1 --to T2 --prefix NAME``: re-publish history into namespaced topics.

Refreshes the warehouse from the live topics (``RLSIZER_TOPIC_PREFIX``) first, then
publishes the window's bars, signals and fills (a worker there derives outcomes from the fills)
to ``NAME.bars``, ``NAME.signals``, ... keeping keys, timestamps and event ids (see
``trainer.backtest.replay_to_topics``). Point a worker at it with ``RLSIZER_TOPIC_PREFIX=NAME``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from config.settings import Settings
from rlsizer.commands.backtest import parse_time

EXIT_FAILED = 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay-to-topics", help="re-publish a window of history into topics with another prefix"
    )
    parser.add_argument(
        "--from", dest="start", type=parse_time, required=True, help="window start (inclusive), ISO, UTC by default"
    )
    parser.add_argument("--to", dest="end", type=parse_time, required=True, help="window end (exclusive)")
    parser.add_argument("--prefix", required=True, help="topic prefix to publish into (must differ from the live one)")
    parser.add_argument(
        "--warmup-bars", type=int, default=None, help="bars per symbol before the window (default: the worker's window)"
    )
    parser.add_argument("--no-refresh", dest="refresh", action="store_false", help="use the warehouse as it is")
    parser.add_argument(
        "--warehouse", type=Path, default=None, help="DuckDB file (default: $RLSIZER_DATA_DIR/warehouse.duckdb)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    import duckdb  # lazy: keeps `rlsizer --help` fast

    from agents.features import WINDOW  # lazy: keeps `rlsizer --help` fast
    from streams.codec_factory import make_codec  # lazy: keeps `rlsizer --help` fast
    from trainer.backtest.replay_to_topics import replay_to_topics  # lazy: keeps `rlsizer --help` fast
    from trainer.warehouse.replay import ReplayError, replay  # lazy: keeps `rlsizer --help` fast
    from trainer.warehouse.store import WarehouseError, default_path  # lazy: keeps `rlsizer --help` fast

    prefix = args.prefix.strip()
    if not prefix or prefix == settings.topic_prefix:
        print(
            f"rlsizer replay-to-topics: --prefix must name another namespace than the live one ({settings.topic_prefix!r})"
        )
        return EXIT_FAILED
    codec = make_codec(settings)
    path = args.warehouse or default_path(settings.data_dir)
    try:
        if args.refresh:
            print(replay(settings, codec, warehouse_path=path, progress=False).summary().splitlines()[-1])
        elif not path.exists():
            print(f"rlsizer replay-to-topics: no warehouse at {path}; run without --no-refresh first")
            return EXIT_FAILED
        con = duckdb.connect(str(path), read_only=True)
        try:
            stats = replay_to_topics(
                con,
                replace(settings, topic_prefix=prefix),
                args.start,
                args.end,
                codec=codec,
                warmup_bars=WINDOW if args.warmup_bars is None else args.warmup_bars,
            )
        finally:
            con.close()
    except (ReplayError, WarehouseError, ValueError, RuntimeError) as exc:
        print(f"rlsizer replay-to-topics: {exc}")
        return EXIT_FAILED
    print(stats.summary())
    return 0
