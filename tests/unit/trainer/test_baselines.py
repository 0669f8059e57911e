from __future__ import annotations

import numpy as np
import pytest

from tests.unit.trainer.helpers import logged
from trainer.baselines import FixedPolicy, HalfKellyPolicy, ModelPolicy, Policy, RulePolicy, VolTargetPolicy
from trainer.environment import replay
from trainer.policy_net import SizingAgent
from trainer.synthetic import synthetic_signals


def test_half_kelly_is_fitted_on_the_training_window_only() -> None:
    # family A: mean 0.5, var 1 -> kelly 0.5 -> half 0.25 (floor) ; family B: strong, clamps at 2
    r_a = [1.5, -0.5] * 20
    r_b = [0.9, 1.1] * 20
    train = logged(r_a + r_b, family=["A"] * 40 + ["B"] * 40)
    pol = HalfKellyPolicy.fit(train)
    var_a = np.var(r_a, ddof=1)
    assert pol.by_family["A"] == pytest.approx(max(0.25, 0.5 * 0.5 / var_a))
    assert pol.by_family["B"] == 2.0
    later = logged([-9.0, -9.0, 1.0], family=["A", "B", "C"])  # held-out outcomes do not matter
    np.testing.assert_allclose(pol.multipliers(later), [pol.by_family["A"], 2.0, 1.0])


def test_half_kelly_floors_a_losing_family() -> None:
    pol = HalfKellyPolicy.fit(logged([-0.5, 0.1] * 20, family=["A"] * 40))
    assert pol.by_family["A"] == 0.25


def test_vol_target_scales_inversely_with_atr_and_clamps() -> None:
    train = logged([0.0] * 3, extra={"sig_atr_pct": [0.01, 0.02, 0.03]})
    pol = VolTargetPolicy.fit(train)
    assert pol.target_atr_pct == pytest.approx(0.02)
    test = logged([0.0] * 4, extra={"sig_atr_pct": [0.02, 0.04, 0.001, 0.0]})
    np.testing.assert_allclose(pol.multipliers(test), [1.0, 0.5, 2.0, 1.0])


def test_every_baseline_is_a_policy_with_one_multiplier_per_row() -> None:
    data = synthetic_signals(n_episodes=10, trades_per_episode=3, seed=0)
    mean = data.features.mean(axis=0).astype(np.float64)
    agent = SizingAgent(mean, data.features.std(axis=0).astype(np.float64), hidden=(4,))
    for pol in (FixedPolicy(), HalfKellyPolicy.fit(data), VolTargetPolicy.fit(data), ModelPolicy(agent)):
        assert isinstance(pol, Policy)
        m = pol.multipliers(data)
        assert m.shape == (len(data),) and np.all((m >= 0.25) & (m <= 2.0))


def test_rule_policy_sees_its_own_drawdown() -> None:
    """The rules halve size beyond 3R of session drawdown: the replay must feed them the
    drawdown implied by their own sizes, not the logged column (99 in the helper)."""
    pytest.importorskip("agents.sizing")
    from agents.sizing import rule_multiplier

    n = 6
    data = logged([-2.0] * n, extra={"sig_q_score": [0.5] * n, "sig_atr_pct": [0.02] * n})
    got = RulePolicy().multipliers(data)
    obs = replay(data, lambda x: np.ones(x.shape[0])).observations  # only non-acct columns used below
    expected = []
    pnl, peak = 0.0, 0.0
    for i in range(n):
        feats = dict(zip(data.feature_names, map(float, obs[i]), strict=True))
        feats.update(acct_session_pnl_r=pnl, acct_drawdown_r=peak - pnl, acct_open_risk_r=expected[-1] if expected else 0.0)
        m, _ = rule_multiplier(feats)
        expected.append(m)
        pnl += m * -2.0
        peak = max(peak, pnl)
    np.testing.assert_allclose(got, expected)
    assert got[0] > got[-1]  # it cut size after the losses
