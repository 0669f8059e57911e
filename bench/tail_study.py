"""Which tail constraint holds out of sample: candidate CVaR-PPO settings, walk-forward, on the shipped data.

For each data set (recorded offline under the rules: ``rlsizer.reference.offline``) the rounds of
``trainer.evaluation.walk_forward.rolling_steps`` are run once per candidate: train on the past, gate on the
round's held-out windows, measure on the next window. The baselines and the plain-PPO ablation
are trained once per round and shared by the candidates. Every policy is replayed as served
(ONNX through ``agents.sizing.decide``) with live's account model.

Per candidate it prints, over all measured windows of all data sets: in how many windows the
session CVaR 5 % was not worse than fixed 1x's, the mean ratio of the two tails, the return, the
return / |session CVaR 5 %| and the mean multiplier, and how often the gate promoted and what
that earned. Results also go, one JSON object per (data set, round, candidate), to ``--out``.

Run: .venv/bin/python bench/tail_study.py [--updates 40] [--steps 4] [--datasets stocks,eurusd,googl] [--candidates A,B,...]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from trainer.evaluation.gate import REQUIRED_BASELINES, GateConfig, promotion_decision
from trainer.evaluation.walk_forward import rolling_steps, score_window
from trainer.learning.cvar_ppo import TrainConfig, plain_ppo, train

DATASETS = {"stocks": ("AAPL", "MSFT", "IBM", "GOOG"), "eurusd": ("EURUSD",), "googl": ("GOOGL",)}
CANDIDATES = {
    "A": ("today's default (beta = fixed 1x's training tail, starts at 1.125x)", {}),
    "B": ("starts at 1x", {"init_multiplier": 1.0}),
    "C": ("starts at 1x, mean size <= 1x", {"init_multiplier": 1.0, "size_cap": 1.0}),
    "D": ("starts at 1x, beta 20 % better than fixed 1x's", {"init_multiplier": 1.0, "beta_margin": 0.2}),
    "E": (
        "starts at 1x, dual step on the 90 % lower bound of the tail",
        {"init_multiplier": 1.0, "tail_confidence": 0.9},
    ),
    "F": ("C + D + E", {"init_multiplier": 1.0, "size_cap": 1.0, "beta_margin": 0.2, "tail_confidence": 0.9}),
    "G": ("starts at 1x, mean size <= 0.9x", {"init_multiplier": 1.0, "size_cap": 0.9}),
}


def load(name: str, cache: Path):
    import duckdb

    from agents.strategy_map import StrategyMap
    from rlsizer.reference.offline import record_datasets
    from trainer.backtest.logged_signals import load_logged_signals

    path = cache / f"{name}.duckdb"
    if not path.exists():
        record_datasets(DATASETS[name], path)
    con = duckdb.connect(str(path), read_only=True)
    try:
        return load_logged_signals(con, StrategyMap.from_spec(""))
    finally:
        con.close()


def served(model, data, run_name: str, name: str):
    from agents.sizing import load_policy
    from trainer.evaluation.baselines import ServedModel
    from trainer.learning.export import export_policy

    exported = export_policy(
        model,
        feature_names=data.feature_names,
        feature_set="study",
        eval_features=data.features[:2000],
        run_name=run_name,
    )
    return ServedModel(load_policy(exported.onnx_bytes, feature_names=data.feature_names, version=run_name), name)


def figures(m) -> dict[str, float]:
    return {
        "return": m.total_return,
        "session_cvar5": m.session_cvar_5,
        "ratio": m.return_to_session_cvar,
        "mean_mult": m.mean_multiplier,
        "trade_cvar5": m.cvar_5,
        "sessions": m.n_sessions,
    }


def main() -> None:
    from trainer.evaluation.baselines import fit_baselines

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--gate-windows", type=int, default=2)
    parser.add_argument("--holdout-fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--skip-plain", action="store_true", help="do not train the plain-PPO ablation (saves one training per round)"
    )
    parser.add_argument("--datasets", default="stocks,eurusd,googl")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--cache", type=Path, default=Path(".rlsizer/study"))
    parser.add_argument("--out", type=Path, default=Path(".rlsizer/study/results.jsonl"))
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    gate = GateConfig(n_boot=500)
    base = TrainConfig(total_updates=args.updates, seed=args.seed)
    with args.out.open("a") as out:
        for ds in args.datasets.split(","):
            data = load(ds, args.cache)
            steps = rolling_steps(
                data, steps=args.steps, gate_windows=args.gate_windows, holdout_fraction=args.holdout_fraction
            )
            print(f"== {ds}: {len(data)} signals, windows of {steps[0].next.n_sessions} sessions", flush=True)
            for step in steps:
                started = time.perf_counter()
                train_window = step.train(data)
                shared = [*fit_baselines(train_window)]
                if not args.skip_plain:
                    plain = train(train_window, plain_ppo(base))
                    shared.append(served(plain.model, data, plain.run_name, "plain_ppo"))
                windows = [data.window(w.start, w.end) for w in step.gate]
                nxt = data.window(step.next.start, step.next.end)
                shared_gate = [score_window(w, shared, n_boot=50) for w in windows]
                shared_next = score_window(nxt, shared, n_boot=50)
                for key in args.candidates.split(","):
                    config = replace(base, **CANDIDATES[key][1])
                    result = train(train_window, config)
                    model = served(result.model, data, result.run_name, "cvar_ppo")
                    gate_scores = [
                        {"cvar_ppo": score_window(w, [model], n_boot=50)["cvar_ppo"], **s}
                        for w, s in zip(windows, shared_gate, strict=True)
                    ]
                    decision = promotion_decision(
                        gate_scores, challenger="cvar_ppo", required=REQUIRED_BASELINES, config=gate
                    )
                    next_scores = {"cvar_ppo": score_window(nxt, [model], n_boot=50)["cvar_ppo"], **shared_next}
                    row = {
                        "dataset": ds,
                        "step": step.index,
                        "window": step.next.label(),
                        "candidate": key,
                        "promoted": decision.promote,
                        "reason": decision.reason,
                        "train_mean_mult": result.history[-1]["charts/mean_multiplier"],
                        **{f"{name}.{k}": v for name, s in next_scores.items() for k, v in figures(s.metrics).items()},
                    }
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    m, f = next_scores["cvar_ppo"].metrics, next_scores["fixed_1x"].metrics
                    print(
                        f"  {step.next.label()} {key}: return {m.total_return:+7.2f} (fixed {f.total_return:+7.2f}) "
                        f"session CVaR5 {m.session_cvar_5:+6.2f} (fixed {f.session_cvar_5:+6.2f}) mean x{m.mean_multiplier:.2f} "
                        f"gate {'PROMOTED' if decision.promote else 'refused'}",
                        flush=True,
                    )
                print(f"  step {step.index} took {time.perf_counter() - started:.0f} s", flush=True)
    summarise(args.out)


def summarise(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    print(
        "\ncandidate  windows  tail>=fixed  mean tail ratio  return (fixed)  ret/|sCVaR5| (fixed, half-Kelly, vol-target)  mean mult  promoted  gated return (rules)"
    )
    for key, (label, _) in CANDIDATES.items():
        mine = [r for r in rows if r["candidate"] == key]
        if not mine:
            continue
        ok = sum(r["cvar_ppo.session_cvar5"] >= r["fixed_1x.session_cvar5"] for r in mine)
        ratio = np.mean(
            [r["cvar_ppo.session_cvar5"] / r["fixed_1x.session_cvar5"] for r in mine if r["fixed_1x.session_cvar5"] < 0]
        )
        ret, fixed_ret = sum(r["cvar_ppo.return"] for r in mine), sum(r["fixed_1x.return"] for r in mine)

        def rr(name: str, mine: list[dict] = mine) -> float:
            return float(np.nanmean([r[f"{name}.ratio"] for r in mine]))

        promoted = [r for r in mine if r["promoted"]]
        gated = sum(r["cvar_ppo.return"] if r["promoted"] else r["rules.return"] for r in mine)
        rules = sum(r["rules.return"] for r in mine)
        print(
            f"{key} {label[:40]:<40} {len(mine):>3}  {ok:>3}/{len(mine):<3}  {ratio:6.3f}  {ret:+8.2f} ({fixed_ret:+8.2f})  "
            f"{rr('cvar_ppo'):+.2f} ({rr('fixed_1x'):+.2f}, {rr('half_kelly'):+.2f}, {rr('vol_target'):+.2f})  "
            f"{np.mean([r['cvar_ppo.mean_mult'] for r in mine]):.2f}  {len(promoted):>2}  {gated:+8.2f} ({rules:+8.2f})"
        )


if __name__ == "__main__":
    main()
