"""``rlsizer models list|show`` read the gate's numbers back from a round's manifest metrics."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rlsizer.commands.models import evidence_lines, summary_cells
from trainer.backtest.synthetic import synthetic_signals
from trainer.evaluation.gate import GateConfig
from trainer.learning.cvar_ppo import TrainConfig
from trainer.round import CHALLENGER_POLICY, Evaluation, WalkForwardConfig, evaluate_challenger, manifest_metrics


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    data = synthetic_signals(n_episodes=60, trades_per_episode=4, seed=3)
    return evaluate_challenger(
        data,
        now=datetime(2024, 5, 1, tzinfo=UTC),
        feature_set="synthetic",
        train_config=TrainConfig(total_updates=2, hidden=(8,), epochs=1, minibatch=64),
        walk_forward=WalkForwardConfig(windows=3, holdout_fraction=0.45),
        gate_config=GateConfig(n_boot=50),
    )


def test_list_shows_the_pooled_return_session_tail_and_verdict(evaluation: Evaluation) -> None:
    metrics = manifest_metrics(evaluation, n_train=100)
    pooled = evaluation.table[CHALLENGER_POLICY]
    verdict = "promoted" if evaluation.decision.promote else "refused"
    assert summary_cells(metrics) == (f"{pooled.total_return:+.2f}", f"{pooled.session_cvar_5:+.2f}", verdict)
    assert summary_cells({}) == ("-", "-", "-")


def test_show_lists_each_windows_figures_and_the_gates_numbers(evaluation: Evaluation) -> None:
    metrics = manifest_metrics(evaluation, n_train=100)
    lines = evidence_lines(metrics)
    assert lines[0].startswith("walk-forward evidence (3 held-out windows")
    for window, scores in zip(evaluation.split.windows, evaluation.scores, strict=True):
        row = next(line for line in lines if line.strip().startswith(f"w{window.index} {window.start:%Y-%m-%d}"))
        for name in ("cvar_ppo", "fixed_1x", "rules"):
            m = scores[name].metrics
            assert f"{m.total_return:+.2f} / {m.session_cvar_5:+.2f}" in row
    for c in evaluation.decision.comparisons:
        line = next(x for x in lines if x.strip().startswith(f"vs {c.reference} "))
        assert f"return diff lower bound {c.return_diff_lower:+.2f}" in line
        assert f"session CVaR5 diff lower bound {c.tail_diff_lower:+.2f}" in line
        assert f"not worse in {c.windows_not_worse}/3 windows" in line and ("passed" if c.passed else "failed") in line
        assert ("(required)" in line) == c.required
    assert lines[-1] == f"verdict: {'promoted' if evaluation.decision.promote else 'refused'}"
    assert evidence_lines({"holdout_return": 1.0}) == []
