"""``rlsizer demo``: the whole learning loop on real market data (see ``rlsizer.demo``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from config.settings import Settings


def register(subparsers: Any) -> None:
    from rlsizer.demo import (  # lazy: keeps `rlsizer --help` fast
        DEFAULT_LEARN_BARS,
        DEFAULT_SERVE_BARS,
        DEFAULT_UPDATES,
    )

    parser = subparsers.add_parser("demo", help="run the whole learning loop on real market data on the embedded stack")
    parser.add_argument(
        "--data-dir", type=Path, default=Path(".rlsizer/demo"), help="the demo's own directory (emptied first)"
    )
    parser.add_argument(
        "--learn-bars", type=int, default=DEFAULT_LEARN_BARS, help="at most this many bars per market before the split"
    )
    parser.add_argument(
        "--serve-bars", type=int, default=DEFAULT_SERVE_BARS, help="at most this many bars per market after the split"
    )
    parser.add_argument("--updates", type=int, default=DEFAULT_UPDATES, help="CVaR-PPO updates in the training round")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--durable", action="store_true", help="store the topics in SeaweedFS like `rlsizer up` (slower)"
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run, kafka_logs=True)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from rlsizer.demo import DemoConfig, run_demo  # lazy: keeps `rlsizer --help` fast

    result = run_demo(
        DemoConfig(
            data_dir=args.data_dir,
            max_learn_bars=args.learn_bars,
            max_serve_bars=args.serve_bars,
            updates=args.updates,
            seed=args.seed,
            memory=not args.durable,
            progress=not args.no_progress,
        )
    )
    return 0 if result.report_path is not None else 1
