"""Training cost per 100k logged decisions, and the other phases of a round, on synthetic rows.

Measures a few CVaR-PPO updates on N synthetic decisions (default 20k, the fs1-sized feature
count is not needed: cost is dominated by the rollout over sessions and the minibatch updates),
then scales linearly to 100k decisions and to a full ``TrainConfig().total_updates`` run.
Also times held-out scoring of the baselines (the rules are replayed row by row), the gate's
bootstraps and the ONNX export with its torch/onnxruntime comparison.

Prints; asserts nothing. Run: .venv/bin/python bench/bench_training.py [--rows 20000] [--updates 5]
"""

from __future__ import annotations

import argparse
import time

from trainer.baselines import ModelPolicy, fit_baselines
from trainer.cvar_ppo import TrainConfig, train
from trainer.export import export_policy
from trainer.gate import promotion_decision, walk_forward_split
from trainer.holdout import score_policies
from trainer.synthetic import synthetic_signals

PER = 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--trades-per-session", type=int, default=10)
    args = parser.parse_args()

    data = synthetic_signals(n_episodes=args.rows // args.trades_per_session, trades_per_episode=args.trades_per_session, seed=0)
    train_window, holdout = walk_forward_split(data)
    config = TrainConfig(total_updates=args.updates)
    started = time.perf_counter()
    result = train(train_window, config)
    seconds = time.perf_counter() - started
    per_update_100k = seconds / args.updates * PER / len(train_window)
    full = TrainConfig().total_updates
    print(f"train: {len(train_window)} decisions x {args.updates} updates in {seconds:.2f} s "
          f"({seconds / args.updates:.3f} s/update)")
    print(f"  per 100k decisions: {per_update_100k:.2f} s/update, {per_update_100k * full / 60:.1f} min for {full} updates "
          f"(x2 per round with the plain-PPO ablation)")

    started = time.perf_counter()
    runs, stand_ins = score_policies(holdout, [ModelPolicy(result.model, "cvar_ppo"), *fit_baselines(train_window)])
    scored = time.perf_counter() - started
    started = time.perf_counter()
    promotion_decision(holdout, stand_ins[0], stand_ins[1:])
    gated = time.perf_counter() - started
    started = time.perf_counter()
    exported = export_policy(result.model, feature_names=data.feature_names, feature_set="bench", eval_features=data.features)
    exported_s = time.perf_counter() - started
    n = len(holdout)
    print(f"score {len(runs)} policies on {n} held-out decisions: {scored:.2f} s ({scored * PER / n:.1f} s per 100k)")
    print(f"gate (bootstrap, {len(stand_ins) - 1} comparisons): {gated:.2f} s ({gated * PER / n:.1f} s per 100k)")
    print(f"ONNX export + check on {len(data)} rows: {exported_s:.2f} s, max |diff| {exported.max_abs_diff:.1e}")


if __name__ == "__main__":
    main()
