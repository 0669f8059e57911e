"""The gate's held-out figures for a challenger equal ``rlsizer backtest`` of that model, window by window, to 1e-9 R.

A recorded history (real bars of two stocks through the worker's input path, rules then a live
model; the two share dates, so the log order the backtest measures in is not time order),
one round's evaluation without Kafka (``trainer.round.evaluate_challenger``: split, train,
export, score, gate), then for each held-out window the backtest of the exported challenger
(and of fixed 1x and the rules) over ``load_history(window.start, window.end)``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from agents.features import FEATURE_NAMES
from agents.sizing import PolicySlot, load_policy
from tests.unit.trainer.recorded import SMAP, Recorded, record
from trainer.backtest.logged_signals import load_logged_signals
from trainer.backtest.run import PolicySpec, backtest, fixed_policy, rules_policy
from trainer.evaluation.gate import GateConfig
from trainer.learning.cvar_ppo import TrainConfig
from trainer.round import CHALLENGER_POLICY, Evaluation, WalkForwardConfig, evaluate_challenger

FIGURES = (
    "n_trades",
    "total_return",
    "mean_return",
    "sharpe_per_trade",
    "sortino",
    "max_drawdown",
    "cvar_5",
    "session_cvar_5",
    "return_to_session_cvar",
    "n_sessions",
    "hit_rate",
    "mean_multiplier",
)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record(tmp_path_factory.mktemp("wh") / "warehouse.duckdb", bars=420, names=("AAPL", "MSFT"))


@pytest.fixture(scope="module")
def evaluation(recorded: Recorded) -> Evaluation:
    con = recorded.connect()
    try:
        data = load_logged_signals(con, SMAP)
    finally:
        con.close()
    return evaluate_challenger(
        data,
        now=datetime(2024, 6, 1, tzinfo=UTC),
        train_config=TrainConfig(total_updates=3, hidden=(16,), epochs=2, minibatch=128, seed=5),
        walk_forward=WalkForwardConfig(windows=3, holdout_fraction=0.45),
        gate_config=GateConfig(n_boot=200),
    )


def test_each_windows_gate_figures_equal_the_backtest_of_the_published_model(
    recorded: Recorded, evaluation: Evaluation
) -> None:
    model = load_policy(evaluation.exported.onnx_bytes, feature_names=FEATURE_NAMES, version=evaluation.version)
    assert len(evaluation.split.windows) == 3
    for window, scores in zip(evaluation.split.windows, evaluation.scores, strict=True):
        history = recorded.history(window.start, window.end)
        result = backtest(
            history,
            [PolicySpec(name="model", slot=PolicySlot(model)), fixed_policy(), rules_policy()],
            SMAP,
            n_boot=100,
        )
        by_name = {"model": CHALLENGER_POLICY, "fixed": "fixed_1x", "rules": "rules"}
        for r in result.results:
            gate = scores[by_name[r.run.name]].metrics
            assert r.overall is not None and r.overall.n_trades > 10
            for figure in FIGURES:
                assert getattr(gate, figure) == pytest.approx(getattr(r.overall, figure), abs=1e-9, rel=0), (
                    window.label(),
                    r.run.name,
                    figure,
                )
        served = scores[CHALLENGER_POLICY]
        assert (served.multipliers != 1.0).any() and served.metrics.mean_multiplier != 1.0
    assert any(
        np.any(np.diff(s[CHALLENGER_POLICY].ts.astype(np.int64)) < 0) for s in evaluation.scores
    )  # log order, not time


def test_the_decision_reads_the_same_windows(evaluation: Evaluation) -> None:
    decision = evaluation.decision
    assert decision.windows == evaluation.scores
    fixed = next(c for c in decision.comparisons if c.reference == "fixed_1x")
    assert fixed.window_tails == tuple(
        (s[CHALLENGER_POLICY].metrics.session_cvar_5, s["fixed_1x"].metrics.session_cvar_5) for s in evaluation.scores
    )
    assert f"{fixed.challenger_return:+.2f}" in decision.reason or decision.promote
