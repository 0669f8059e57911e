"""The promotion gate over walk-forward windows: no tail margin, evidence in every window, numbers in the reason."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from trainer.backtest.synthetic import synthetic_signals
from trainer.evaluation.baselines import FixedPolicy, RulePolicy
from trainer.evaluation.gate import GateConfig, promotion_decision
from trainer.evaluation.walk_forward import held_out_windows, score_window
from trainer.learning.environment import LoggedSignals

FAST = GateConfig(n_boot=300)


@pytest.fixture(scope="module")
def data() -> LoggedSignals:
    return synthetic_signals(n_episodes=400, trades_per_episode=4, seed=11)


def windows_scores(data: LoggedSignals, policies, windows: int = 3):
    split = held_out_windows(data, windows=windows, holdout_fraction=0.6)
    return [score_window(data.window(w.start, w.end), policies, n_boot=50) for w in split.windows]


@dataclass(frozen=True)
class Uniform:
    """Every signal at the same size, e.g. 1.05x: a 5 % larger average size than the bot's own."""

    multiplier: float
    name: str = "challenger"

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        return np.full(len(data), self.multiplier)


@dataclass(frozen=True)
class CutsLosers:
    """At least the larger of 1x and the rules on winning trades, the floor on losing ones (knows outcomes)."""

    name: str = "challenger"

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        losing = (data.r_multiple - data.cost_r) < 0
        return np.where(losing, 0.25, np.maximum(1.0, RulePolicy().multipliers(data)))


def test_a_uniform_5_percent_upsizer_is_refused_though_the_old_10_percent_margin_passed_it(data: LoggedSignals) -> None:
    scores = windows_scores(data, [Uniform(1.05), FixedPolicy()])
    decision = promotion_decision(scores, challenger="challenger", required=("fixed_1x",), config=FAST)
    (cmp,) = decision.comparisons
    # the data: a strategy that wins on average, so 1.05x earns more with evidence ...
    assert cmp.return_diff_lower > 0
    # ... and a session tail exactly 5 % worse (CVaR is positively homogeneous)
    assert cmp.challenger_tail == pytest.approx(1.05 * cmp.reference_tail, rel=1e-12) and cmp.reference_tail < 0
    # today's main: promoted when the tail's lower bound is within max(0.05 R, 10 % of the reference's tail)
    old_margin = max(0.05, 0.10 * abs(cmp.reference_tail))
    assert cmp.tail_diff_lower >= -old_margin
    # this gate: no margin, so the larger average size does not get through
    assert not decision.promote
    assert (
        "session CVaR5" in decision.reason
        and "needs >= 0" in decision.reason
        and "not worse in 0/3 windows" in decision.reason
    )


def test_a_model_that_cuts_size_on_losing_trades_is_promoted(data: LoggedSignals) -> None:
    scores = windows_scores(data, [CutsLosers(), FixedPolicy(), RulePolicy()])
    decision = promotion_decision(scores, challenger="challenger", required=("fixed_1x", "rules"), config=FAST)
    assert decision.promote, decision.reason
    assert decision.reason.startswith("promoted over 3 walk-forward windows")
    for cmp in decision.comparisons:
        assert cmp.windows_not_worse == 3 and cmp.tail_diff_lower >= 0 and cmp.return_diff_lower > 0
        assert f"vs {cmp.reference}: return {cmp.challenger_return:+.2f}" in decision.reason


def test_a_tail_worse_in_one_window_is_refused_even_when_pooled_evidence_passes(data: LoggedSignals) -> None:
    scores = windows_scores(data, [CutsLosers(), FixedPolicy()])
    worse_last = Uniform(1.3, name="challenger")  # in the last window only, a plain upsizer
    last = scores[-1]
    split = held_out_windows(data, windows=3, holdout_fraction=0.6)
    scores[-1] = score_window(
        data.window(split.windows[-1].start, split.windows[-1].end), [worse_last, FixedPolicy()], n_boot=50
    )
    decision = promotion_decision(scores, challenger="challenger", required=("fixed_1x",), config=FAST)
    (cmp,) = decision.comparisons
    assert cmp.return_diff_lower > 0 and cmp.tail_diff_lower >= 0  # the pooled tests alone would pass it
    assert cmp.windows_not_worse == 2 and not decision.promote
    assert "not worse in 2/3 windows" in decision.reason
    assert last["challenger"].metrics.session_cvar_5 >= last["fixed_1x"].metrics.session_cvar_5


def test_a_copy_of_the_reference_is_not_promoted(data: LoggedSignals) -> None:
    scores = windows_scores(data, [FixedPolicy(name="challenger"), FixedPolicy()])
    decision = promotion_decision(scores, challenger="challenger", required=("fixed_1x",), config=FAST)
    (cmp,) = decision.comparisons
    assert cmp.tail_diff_lower == 0.0 and cmp.return_diff_lower == 0.0 and not decision.promote


def test_one_window_is_not_enough_evidence(data: LoggedSignals) -> None:
    scores = windows_scores(data, [CutsLosers(), FixedPolicy()], windows=1)
    decision = promotion_decision(scores, challenger="challenger", required=("fixed_1x",), config=FAST)
    assert not decision.promote and "needs at least 2" in decision.reason


def test_an_unscorable_champion_or_a_missing_reference_blocks_promotion(data: LoggedSignals) -> None:
    scores = windows_scores(data, [CutsLosers(), FixedPolicy()])
    blocked = promotion_decision(
        scores,
        challenger="challenger",
        required=("champion", "fixed_1x"),
        config=FAST,
        champion_problem="ModelVerificationError: bad signature",
    )
    assert not blocked.promote and "bad signature" in blocked.reason
    missing = promotion_decision(scores, challenger="challenger", required=("fixed_1x", "rules"), config=FAST)
    assert not missing.promote and "no scores for required rules" in missing.reason


@dataclass(frozen=True)
class Oracle:
    """2x on winning trades, the floor on losing ones: nothing realistic beats it."""

    name: str = "oracle"

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        return np.where((data.r_multiple - data.cost_r) < 0, 0.25, 2.0)


def test_informative_references_are_reported_not_required(data: LoggedSignals) -> None:
    scores = windows_scores(data, [CutsLosers(), FixedPolicy(), Oracle()])
    decision = promotion_decision(scores, challenger="challenger", required=("fixed_1x",), config=FAST)
    assert decision.required == ("fixed_1x",)
    oracle = next(c for c in decision.comparisons if c.reference == "oracle")
    assert not oracle.passed and not oracle.required
    assert decision.promote and decision.reason.endswith("(not required, not beaten: oracle)")


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="confidence"):
        GateConfig(confidence=0.4)
    with pytest.raises(ValueError, match="min_windows"):
        GateConfig(min_windows=0)
