"""Held-out scoring reuse and the production promotion rule (required references only)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.trainer.helpers import logged
from trainer.baselines import FixedPolicy
from trainer.gate import Comparison, GateDecision
from trainer.holdout import Precomputed, promotion_verdict, score_policies


def comparison(ref: str, passed: bool) -> Comparison:
    return Comparison(reference=ref, return_diff=1.0, return_diff_lower=0.5 if passed else -0.5, cvar_diff=0.0,
                      cvar_diff_lower=0.0, passed=passed)


def decision(**passed: bool) -> GateDecision:
    return GateDecision(promote=all(passed.values()), reason="", table={},
                        comparisons=tuple(comparison(k, v) for k, v in passed.items()))


def test_promotes_when_required_pass_even_if_half_kelly_is_not_beaten() -> None:
    v = promotion_verdict(decision(fixed_1x=True, rules=True, half_kelly=False), required=("fixed_1x", "rules"))
    assert v.promote and "half_kelly" in v.reason


def test_a_failed_required_comparison_blocks_promotion() -> None:
    v = promotion_verdict(decision(champion=False, fixed_1x=True, rules=True), required=("champion", "fixed_1x", "rules"))
    assert not v.promote and "vs champion" in v.reason


def test_a_required_reference_that_was_not_compared_blocks_promotion() -> None:
    v = promotion_verdict(decision(fixed_1x=True), required=("fixed_1x", "rules"))
    assert not v.promote and "rules" in v.reason


def test_an_unscorable_champion_blocks_promotion() -> None:
    v = promotion_verdict(decision(fixed_1x=True, rules=True), required=("champion", "fixed_1x", "rules"),
                          champion_problem="ModelVerificationError: bad signature")
    assert not v.promote and "bad signature" in v.reason


def test_scores_are_time_ordered_and_stand_ins_replay_the_same_multipliers() -> None:
    data = logged([1.0, -1.0, 2.0, 0.5], episode=[1, 0, 1, 0], cost=0.1)
    data = data.subset(np.array([1, 3, 0, 2]))  # grouped by session, not in time order
    runs, stand_ins = score_policies(data, [FixedPolicy(0.5, name="half")])
    run = runs["half"]
    assert np.all(np.diff(run.ts.astype(np.int64)) >= 0)
    np.testing.assert_allclose(run.rewards, 0.5 * (np.array([1.0, -1.0, 2.0, 0.5]) - 0.1))
    np.testing.assert_array_equal(stand_ins[0].multipliers(data), np.full(4, 0.5))
    with pytest.raises(ValueError, match="precomputed for 4 rows"):
        Precomputed("x", np.ones(4)).multipliers(data.subset(np.array([0, 1])))
