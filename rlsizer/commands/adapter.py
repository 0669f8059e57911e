"""``rlsizer adapter``: the reference market adapter on real bars, with paper execution.

    rlsizer adapter dataset AAPL                 # built-in: AAPL FB GOOG IBM MSFT GOOGL (1d), EURUSD (1h)
    rlsizer adapter csv bars.csv --symbol BTCUSD --interval 1h

Replays the bars in order through the stack (bars, signals of strategies S1..S14,
fills) and sizes every signal with the decision rlsizer returns; a decision that
misses the timeout is traded at multiplier 1.0 (see ``streams.adapter_sdk``).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

from config.settings import Settings
from streams.codec_factory import make_codec

EXIT_BAD_DATA = 2


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "adapter",
        help="replay real bars through rlsizer with the reference strategies and paper execution",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sources = p.add_subparsers(dest="source", metavar="SOURCE", required=True)
    csv_p = sources.add_parser(
        "csv", help="bars from a CSV file (Date/Datetime/Timestamp/Time + Open/High/Low/Close[/Volume])"
    )
    csv_p.add_argument("path")
    csv_p.add_argument("--symbol", required=True)
    csv_p.add_argument(
        "--interval", default=None, help="bar length like 1d, 1h, 15m (default: inferred from the timestamps)"
    )
    ds_p = sources.add_parser("dataset", help="a built-in data set (no download)")
    ds_p.add_argument("name", help="AAPL, FB, GOOG, IBM, MSFT, GOOGL or EURUSD")
    for sp in (csv_p, ds_p):
        sp.add_argument("--base-qty", type=float, default=100.0, help="quantity at multiplier 1 (default 100)")
        sp.add_argument(
            "--timeout-ms",
            type=int,
            default=None,
            help="decision budget per bar (default: RLSIZER_DECISION_TIMEOUT_MS)",
        )
        sp.add_argument("--slippage-bps", type=float, default=1.0)
        sp.add_argument("--fee-per-unit", type=float, default=0.0)
        sp.add_argument("--limit", type=int, default=None, help="replay only the first N bars")
        sp.add_argument(
            "--run-id", default=None, help="part of every signal id; reuse it to replay idempotently (default: random)"
        )
        sp.add_argument("--adapter-name", default="reference")
        sp.add_argument("--no-progress", action="store_true")
        sp.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from rlsizer.reference.data import (  # lazy: keeps `rlsizer --help` fast
        BarDataError,
        infer_interval,
        interval_seconds,
        load_csv,
        load_dataset,
    )
    from rlsizer.reference.loop import RunConfig  # lazy: keeps `rlsizer --help` fast
    from rlsizer.reference.loop import run as run_loop  # lazy: keeps `rlsizer --help` fast
    from rlsizer.reference.paper import PaperConfig  # lazy: keeps `rlsizer --help` fast
    from streams.adapter_sdk import AdapterClient  # lazy: keeps `rlsizer --help` fast

    try:
        if args.source == "csv":
            frame = load_csv(args.path)
            symbol, interval = args.symbol, args.interval or infer_interval(frame.index)
        else:
            frame = load_dataset(args.name)
            symbol, interval = frame.attrs["symbol"], frame.attrs["interval"]
        interval_seconds(interval)
        paper = PaperConfig(slippage_bps=args.slippage_bps, fee_per_unit=args.fee_per_unit)
    except (BarDataError, ValueError) as exc:
        print(f"rlsizer adapter: {exc}", file=sys.stderr)
        return EXIT_BAD_DATA
    if args.limit:
        frame = frame.iloc[: args.limit]
    cfg = RunConfig(
        symbol=symbol,
        interval=interval,
        run_id=args.run_id or uuid.uuid4().hex[:8],
        adapter_name=args.adapter_name,
        base_qty=args.base_qty,
        timeout_s=None if args.timeout_ms is None else args.timeout_ms / 1000,
        paper=paper,
    )
    codec = make_codec(settings)
    print(
        f"rlsizer adapter: {symbol} {interval}, {len(frame)} bars {frame.index[0]} .. {frame.index[-1]}, run {cfg.run_id}",
        file=sys.stderr,
    )
    with AdapterClient(settings, codec, adapter_name=args.adapter_name) as client:
        summary = run_loop(frame, cfg, client, progress=not args.no_progress)
    print(f"rlsizer adapter: {summary.line()}")
    return 0
