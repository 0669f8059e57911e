"""``rlsizer backtest --from T1 --to T2 --policy fixed,rules,champion,<version>``: compare sizing policies by replay.

Refreshes the warehouse from Kafka first (``rlsizer replay``; skip with ``--no-refresh``),
then replays the window's recorded signals through the worker's own feature and sizing
code with each policy (see ``trainer.backtest.run``). Prints a table per policy and strategy
family, then the parity check: the window replayed with each signal sized by the
policy that decided it live (the rules, or the model version its decision names), its
features and multipliers compared with the live ones (``trainer.backtest.parity``).
``--check-parity`` exits 1 on any difference. ``--report PATH`` writes an HTML report
with plots.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.settings import Settings

EXIT_FAILED = 1


def parse_time(text: str) -> datetime:
    """ISO date or time; without a zone it is UTC."""
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO date/time: {text!r} (e.g. 2024-03-01 or 2024-03-01T09:30:00Z)"
        ) from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("backtest", help="compare sizing policies over a window of recorded signals")
    parser.add_argument(
        "--from", dest="start", type=parse_time, required=True, help="window start (inclusive), ISO, UTC by default"
    )
    parser.add_argument("--to", dest="end", type=parse_time, required=True, help="window end (exclusive)")
    parser.add_argument(
        "--policy",
        default="fixed,rules,champion",
        help="comma-separated: fixed (1.0), rules, champion, challenger, a model version, or live "
        "(each signal by the policy that decided it live)",
    )
    parser.add_argument(
        "--check-parity",
        action="store_true",
        help="exit 1 when any recomputed feature, multiplier or policy differs from the live one",
    )
    parser.add_argument("--no-refresh", dest="refresh", action="store_false", help="use the warehouse as it is")
    parser.add_argument(
        "--warehouse", type=Path, default=None, help="DuckDB file (default: $RLSIZER_DATA_DIR/warehouse.duckdb)"
    )
    parser.add_argument("--report", type=Path, default=None, help="write an HTML report here")
    parser.add_argument(
        "--bootstrap", type=positive_int, default=500, help="bootstrap resamples for the intervals (seeded)"
    )
    parser.set_defaults(func=run)


def resolve_policies(names: list[str], registry_factory: Any) -> list[Any]:
    from trainer.backtest.run import (  # lazy: keeps `rlsizer --help` fast
        BacktestError,
        fixed_policy,
        live_policy,
        model_policy,
        rules_policy,
    )

    specs = []
    registry = None
    for name in names:
        if name == "fixed":
            specs.append(fixed_policy())
        elif name == "rules":
            specs.append(rules_policy())
        elif name == "live":
            specs.append(live_policy(_Lazy(registry_factory)))
        else:
            registry = registry or registry_factory()
            version = name
            if name in ("champion", "challenger"):
                version = registry.champion() if name == "champion" else registry.challenger()
                if version is None:
                    raise BacktestError(f"the registry has no {name} for model {registry.model_name}")
            specs.append(model_policy(registry, version, name=name if name == version else f"{name} {version}"))
    return specs


class _Lazy:
    """A registry made on first use (a live replay of rules-only decisions needs none)."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory
        self._registry: Any = None

    def fetch_verified(self, version: str) -> Any:
        if self._registry is None:
            self._registry = self._factory()
        return self._registry.fetch_verified(version)


def run(args: argparse.Namespace, settings: Settings) -> int:
    import duckdb  # lazy: keeps `rlsizer --help` fast

    from agents.strategy_map import StrategyMap  # lazy: keeps `rlsizer --help` fast
    from rlsizer.commands.replay import kafka_hint  # lazy: keeps `rlsizer --help` fast
    from trainer.backtest.events import load_history  # lazy: keeps `rlsizer --help` fast
    from trainer.backtest.parity import check_parity  # lazy: keeps `rlsizer --help` fast
    from trainer.backtest.report import text_report, write_html  # lazy: keeps `rlsizer --help` fast
    from trainer.backtest.run import (  # lazy: keeps `rlsizer --help` fast
        BacktestError,
        backtest,
        live_policy,
        run_policy,
    )
    from trainer.warehouse.replay import ReplayError, replay  # lazy: keeps `rlsizer --help` fast
    from trainer.warehouse.store import (  # lazy: keeps `rlsizer --help` fast
        WarehouseError,
        default_path,
        open_warehouse,
    )

    names = [n.strip() for n in args.policy.split(",") if n.strip()]
    path = args.warehouse or default_path(settings.data_dir)
    try:
        if args.refresh:
            from streams.codec_factory import make_codec  # lazy: keeps `rlsizer --help` fast

            codec = make_codec(settings)
            print(replay(settings, codec, warehouse_path=path, progress=False).summary().splitlines()[-1])
        elif not path.exists():
            print(
                f"rlsizer backtest: no warehouse at {path}; run without --no-refresh (or `rlsizer replay`) first",
                file=sys.stderr,
            )
            return EXIT_FAILED
        else:
            try:  # validated before reading; an unusable file is the user's to look at, never replaced
                open_warehouse(path, repair=False).close()
            except WarehouseError as exc:
                print(f"rlsizer backtest: {exc}; run without --no-refresh to rebuild it from Kafka", file=sys.stderr)
                return EXIT_FAILED
        from models.registry import ModelRegistry  # lazy: keeps `rlsizer --help` fast

        specs = resolve_policies(names, lambda: ModelRegistry.from_settings(settings))
        con = duckdb.connect(str(path), read_only=True)
        try:
            history = load_history(con, args.start, args.end)
        finally:
            con.close()
        if not history.window_ids:
            print(
                f"rlsizer backtest: no signals between {args.start.isoformat()} and {args.end.isoformat()} in {path}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        strategy_map = StrategyMap.from_spec(settings.strategy_map)
        result = backtest(history, specs, strategy_map, n_boot=args.bootstrap)
        live = next((r.run for r in result.results if r.run.as_recorded), None)
        if live is None:
            live = run_policy(history, live_policy(_Lazy(lambda: ModelRegistry.from_settings(settings))), strategy_map)
    except (BacktestError, ReplayError, WarehouseError, ValueError) as exc:
        print(f"rlsizer backtest: {exc}{kafka_hint(exc, settings)}", file=sys.stderr)
        return EXIT_FAILED
    report = check_parity(live, history)
    parity = f"{_deciders(live)}\n{report.summary()}"
    print(text_report(result))
    print(parity)
    if args.report is not None:
        print(f"report: {write_html(result, args.report, extra=parity)}")
    if args.check_parity and not report.ok():
        print("rlsizer backtest: parity check failed: the replay differs from what the worker decided", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _deciders(run: Any) -> str:
    """Who decided the window's signals live, as the parity replay sized them."""

    counts = Counter(f"model {v}" if v else "rules" for v in run.decided_by)
    listed = ", ".join(f"{name} {n:,}" for name, n in sorted(counts.items()))
    return f"parity replay (each signal sized by the policy that decided it live: {listed or 'none'})"
