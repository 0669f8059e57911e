"""``rlsizer evaluate``: walk-forward evaluation of CVaR-PPO, plain PPO and the baselines over the recorded history.

Training rounds are rolled forward over the warehouse (``trainer.evaluation.evaluate``): each trains on the
past, is gated on its held-out windows, and every policy is then measured on the next window,
which the round never saw. Prints the gate's verdict per round and the walk-forward table (per
window and over all windows: return, Sharpe, max drawdown, per-trade and session CVaR 5 %,
return / |session CVaR 5 %|, mean multiplier), and writes an HTML report with equity and tail
plots per window.

The history is the warehouse (refreshed from Kafka first, as ``rlsizer backtest`` does; skip with
``--no-refresh``), or, with ``--record AAPL,EURUSD``, the shipped data sets recorded offline under
the rules into a new warehouse (``rlsizer.reference.offline``). Exit codes: 0 done, 1 no usable
history or too short for the windows asked for.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import sys
from pathlib import Path
from typing import Any

from config.settings import Settings

EXIT_FAILED = 1


def register(subparsers: Any) -> None:
    from rlsizer.commands.backtest import parse_time  # lazy: keeps `rlsizer --help` fast

    p = subparsers.add_parser(
        "evaluate", help="walk-forward evaluation of every sizing policy over the recorded history"
    )
    p.add_argument(
        "--warehouse", type=Path, default=None, help="DuckDB file (default: $RLSIZER_DATA_DIR/warehouse.duckdb)"
    )
    p.add_argument(
        "--record",
        default=None,
        metavar="DATASETS",
        help="record these shipped data sets (e.g. AAPL,MSFT,EURUSD,GOOGL) offline into a new --warehouse first",
    )
    p.add_argument("--max-bars", type=int, default=None, help="with --record: the first N bars of each data set")
    p.add_argument("--no-refresh", dest="refresh", action="store_false", help="use the warehouse as it is")
    p.add_argument("--from", dest="start", type=parse_time, default=None, help="history from (default: all)")
    p.add_argument("--to", dest="end", type=parse_time, default=None, help="history to, exclusive (default: all)")
    p.add_argument("--steps", type=int, default=4, help="rounds rolled forward, one measured window each (default 4)")
    p.add_argument("--gate-windows", type=int, default=2, help="held-out windows each round's gate reads (default 2)")
    p.add_argument("--window-sessions", type=int, default=None, help="sessions (UTC days) per window")
    p.add_argument(
        "--holdout-fraction",
        type=float,
        default=0.5,
        help="without --window-sessions: the share of sessions all windows take together (default 0.5)",
    )
    p.add_argument(
        "--train-sessions", type=int, default=None, help="sessions each round trains on (default: all before it)"
    )
    p.add_argument("--updates", type=int, default=None, help="PPO updates per training (default: TrainConfig's)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default: TrainConfig's)")
    p.add_argument(
        "--set",
        dest="options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other TrainConfig field, e.g. --set size_cap=1.0 --set beta_margin=0.2 (repeatable)",
    )
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the gate (seeded)")
    p.add_argument(
        "--report", type=Path, default=None, help="HTML report path (default: $RLSIZER_DATA_DIR/reports/evaluate.html)"
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def train_config(args: argparse.Namespace) -> Any:
    from trainer.learning.cvar_ppo import TrainConfig  # lazy: keeps `rlsizer --help` fast

    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    values: dict[str, Any] = {k: v for k, v in (("total_updates", args.updates), ("seed", args.seed)) if v is not None}
    for option in args.options:
        key, sep, raw = option.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"--set {option!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(fields))}")
        values[key] = _parse(raw)
    return TrainConfig(**values)


def _parse(raw: str) -> Any:

    if raw.lower() in ("none", "null"):
        return None
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def run(args: argparse.Namespace, settings: Settings) -> int:
    import duckdb  # lazy: keeps `rlsizer --help` fast

    from agents.strategy_map import StrategyMap  # lazy: keeps `rlsizer --help` fast
    from trainer.backtest.logged_signals import NoSignals, load_logged_signals  # lazy: keeps `rlsizer --help` fast
    from trainer.evaluation.evaluate import (  # lazy: keeps `rlsizer --help` fast
        EvaluateConfig,
        aggregate_rows,
        render_html,
        step_rows,
        tail_summary,
        verdict_line,
        walk_forward,
    )
    from trainer.evaluation.gate import GateConfig  # lazy: keeps `rlsizer --help` fast
    from trainer.evaluation.report import write_html  # lazy: keeps `rlsizer --help` fast
    from trainer.evaluation.walk_forward import NotEnoughSessions, format_rows  # lazy: keeps `rlsizer --help` fast
    from trainer.warehouse.store import default_path  # lazy: keeps `rlsizer --help` fast

    path = args.warehouse or default_path(settings.data_dir)
    try:
        config = train_config(args)
        if args.record:
            from rlsizer.reference.offline import record_datasets  # lazy: keeps `rlsizer --help` fast

            names = [n.strip() for n in args.record.split(",") if n.strip()]
            for name, line in record_datasets(names, path, max_bars=args.max_bars, progress=args.progress).items():
                print(f"recorded {name}: {line}")
        elif args.refresh:
            from streams.codec_factory import make_codec  # lazy: keeps `rlsizer --help` fast
            from trainer.warehouse.replay import replay  # lazy: keeps `rlsizer --help` fast

            print(
                replay(settings, make_codec(settings), warehouse_path=path, progress=False).summary().splitlines()[-1]
            )
        elif not path.exists():
            print(
                f"rlsizer evaluate: no warehouse at {path}; run without --no-refresh, or with --record", file=sys.stderr
            )
            return EXIT_FAILED
        con = duckdb.connect(str(path), read_only=True)
        try:
            data = load_logged_signals(
                con, StrategyMap.from_spec(settings.strategy_map), start=args.start, end=args.end
            )
        finally:
            con.close()
        evaluate = EvaluateConfig(
            steps=args.steps,
            gate_windows=args.gate_windows,
            window_sessions=args.window_sessions,
            holdout_fraction=args.holdout_fraction,
            train_sessions=args.train_sessions,
        )
        print(
            f"{len(data)} signals ({int(data.scored.sum())} scored) of {', '.join(sorted(set(data.symbol.tolist())))}; "
            f"training {args.steps} rounds x (CVaR-PPO + plain PPO), {config.total_updates} updates each"
        )
        wf = walk_forward(
            data,
            evaluate,
            config,
            GateConfig(n_boot=args.bootstrap),
            progress=args.progress,
            on_step=lambda s: print(verdict_line(s), flush=True),
        )
    except (NoSignals, NotEnoughSessions, FileExistsError, ValueError) as exc:
        print(f"rlsizer evaluate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print()
    print(format_rows([row for s in wf.steps for row in step_rows(s)] + aggregate_rows(wf)))
    print()
    print(
        f"the gate promoted {wf.promotions} of {len(wf.steps)} rounds; 'gated' = what served each window (model if promoted, else rules)"
    )
    for name, (n, total, ratio) in tail_summary(wf).items():
        print(
            f"  {name:<11} session CVaR5 not worse than fixed 1x's in {n}/{total} windows, mean ratio to it {ratio:.2f}"
        )
    facts = {
        "history": str(path),
        "signals": f"{len(data)} ({int(data.scored.sum())} scored)",
        "windows": f"{args.steps} measured + {args.gate_windows} gate windows per round",
        "training": repr(config),
    }
    report = write_html(
        render_html(wf, title="rlsizer walk-forward evaluation", facts=facts),
        args.report or settings.data_dir / "reports" / "evaluate.html",
    )
    print(f"report: {report}")
    return 0
