"""Training cost: the environment's replay and rollouts (live's account model), PPO updates, scoring, gate, export.

Two data sets: seeded synthetic sessions (trades close within their day, so the account splits
into many independent lanes) and, with ``--recorded``, real bars recorded offline through the
worker's pure functions (``rlsizer.reference.offline``; a symbol's trades overlap across days, so
its account is one long lane). Reports seconds per update and per 100k signals, and the share
of an update spent in the rollout.

Prints; asserts nothing. Run: .venv/bin/python bench/bench_training.py [--rows 20000] [--updates 5] [--recorded AAPL,EURUSD]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from trainer.backtest.synthetic import synthetic_signals
from trainer.evaluation.baselines import fit_baselines
from trainer.evaluation.gate import GateConfig, promotion_decision
from trainer.evaluation.walk_forward import held_out_windows, score_window
from trainer.learning.cvar_ppo import TrainConfig, _rollout, train
from trainer.learning.environment import LoggedSignals, SizingEnv, replay
from trainer.learning.export import export_policy
from trainer.learning.policy_net import SizingAgent

PER = 100_000


def measure(label: str, data: LoggedSignals, updates: int) -> None:
    torch.set_num_threads(1)
    env = SizingEnv(data)
    started = time.perf_counter()
    replay(data, lambda obs, rows: np.ones(rows.size))
    fixed_s = time.perf_counter() - started
    agent = SizingAgent(data.features.mean(axis=0), data.features.std(axis=0))
    started = time.perf_counter()
    _rollout(env, agent, np.random.default_rng(0))
    rollout_s = time.perf_counter() - started
    started = time.perf_counter()
    result = train(data, TrainConfig(total_updates=updates))
    seconds = time.perf_counter() - started
    print(
        f"{label}: {len(data)} signals, {len(data.account.pieces)} independent lanes (longest {max(b - a for _, a, b in data.account.pieces)} events)"
    )
    print(
        f"  replay at 1x {fixed_s:.2f} s; one rollout {rollout_s:.2f} s ({rollout_s * PER / len(data):.1f} s per 100k)"
    )
    print(
        f"  train {updates} updates: {seconds:.2f} s ({seconds / updates:.3f} s/update, rollout {rollout_s / (seconds / updates):.0%} of it; "
        f"{seconds / updates * PER / len(data):.1f} s/update per 100k)"
    )

    split = held_out_windows(data, windows=3, holdout_fraction=0.3)
    train_window = split.train(data)
    policies = [*fit_baselines(train_window)]
    started = time.perf_counter()
    scores = [score_window(data.window(w.start, w.end), policies, n_boot=200) for w in split.windows]
    scored = time.perf_counter() - started
    started = time.perf_counter()
    promotion_decision(scores, challenger="fixed_1x", required=("rules",), config=GateConfig())
    gated = time.perf_counter() - started
    started = time.perf_counter()
    exported = export_policy(
        result.model, feature_names=data.feature_names, feature_set="bench", eval_features=data.features
    )
    exported_s = time.perf_counter() - started
    print(
        f"  score {len(policies)} policies on 3 windows: {scored:.2f} s; gate: {gated:.2f} s; "
        f"ONNX export + check: {exported_s:.2f} s (max |diff| {exported.max_abs_diff:.1e})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--trades-per-session", type=int, default=10)
    parser.add_argument("--recorded", default="", help="comma-separated data sets to record offline and measure too")
    parser.add_argument("--bars", type=int, default=1500, help="bars per recorded data set")
    args = parser.parse_args()

    data = synthetic_signals(
        n_episodes=args.rows // args.trades_per_session, trades_per_episode=args.trades_per_session, seed=0
    )
    measure("synthetic", data, args.updates)
    if args.recorded:
        import duckdb

        from agents.strategy_map import StrategyMap
        from rlsizer.reference.offline import record_datasets
        from trainer.backtest.logged_signals import load_logged_signals

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "warehouse.duckdb"
            record_datasets(args.recorded.split(","), path, max_bars=args.bars)
            con = duckdb.connect(str(path), read_only=True)
            recorded = load_logged_signals(con, StrategyMap.from_spec(""))
            con.close()
        measure(f"recorded {args.recorded}", recorded, args.updates)


if __name__ == "__main__":
    main()
