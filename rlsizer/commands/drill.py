"""``rlsizer drill``: the crash soak -- every signal decided once through worker kills, joins and leaves.

Starts an embedded stack of its own (memory broker, free ports, a throwaway data dir),
runs ``rlsizer.drill.run_drill`` and prints signals, lost, conflicting, duplicates,
kills and rebalances. ``--runs N`` repeats it on fresh topics. Exit 1 when any signal
was lost or got two different decisions.
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from config.settings import Settings

EXIT_FAILED = 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "drill", help="crash soak: kills, joins and leaves of workers; every signal decided once"
    )
    parser.add_argument("--signals", type=int, default=20000, help="signals per run (default 20,000)")
    parser.add_argument("--rate", type=float, default=200.0, help="signals per second (default 200)")
    parser.add_argument("--symbols", type=int, default=12)
    parser.add_argument("--runs", type=int, default=1, help="runs, each on fresh topics")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="where the stack and workers keep data (default: a temp dir)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from confluent_kafka.admin import AdminClient  # lazy: keeps `rlsizer --help` fast

    from rlsizer.drill import DrillPlan, run_drill  # lazy: keeps `rlsizer --help` fast
    from rlsizer.stack.embedded import EmbeddedStack, StackPorts  # lazy: keeps `rlsizer --help` fast
    from streams.codec_factory import make_codec  # lazy: keeps `rlsizer --help` fast
    from streams.topics import ensure_topics, new_topics  # lazy: keeps `rlsizer --help` fast

    if args.signals < 100 or args.rate <= 0 or args.runs < 1 or args.symbols < 1:
        print("rlsizer drill: --signals >= 100, --rate > 0, --runs >= 1 and --symbols >= 1, please")
        return 2
    base = args.data_dir or Path(tempfile.mkdtemp(prefix="rlsizer-drill-"))
    plan = DrillPlan(symbols=args.symbols, signals=args.signals, rate=args.rate)
    failed = 0
    with EmbeddedStack(base / "stack", ports=StackPorts.free(), memory=True) as stack:
        for i in range(args.runs):
            s = replace(
                stack.settings,
                topic_prefix=f"drill{uuid.uuid4().hex[:6]}",
                topic_partitions=args.partitions,
                worker_web_port=0,
                data_dir=base / f"run{i + 1}",
            )
            ensure_topics(AdminClient(s.kafka_config()), new_topics(s, include_schemas=False))
            report = run_drill(s, make_codec(s), plan, say=lambda line: print(line, flush=True))
            print(f"run {i + 1}: {report.summary()}", flush=True)
            if not report.ok():
                failed += 1
                print(f"run {i + 1}: FAILED; first lost {report.lost_ids[:10]}; worker logs in {s.data_dir / 'logs'}")
    return EXIT_FAILED if failed else 0
