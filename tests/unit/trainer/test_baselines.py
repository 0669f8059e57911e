from __future__ import annotations

import numpy as np
import pytest

from agents.sizing import rule_multiplier
from tests.unit.trainer.helpers import logged
from trainer.backtest.synthetic import synthetic_signals
from trainer.evaluation.baselines import (
    FixedPolicy,
    HalfKellyPolicy,
    ModelPolicy,
    Policy,
    RulePolicy,
    VolTargetPolicy,
    half_kelly_multiplier,
    shrunk_mean,
)
from trainer.learning.policy_net import SizingAgent


def outcomes(mean: float, sd: float, n: int) -> np.ndarray:
    """n outcomes with exactly this sample mean and sample standard deviation (ddof=1)."""
    z = np.random.default_rng(0).normal(size=n)
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + sd * z


def test_outcomes_have_the_stated_moments() -> None:
    x = outcomes(0.05, 1.2, 400)
    assert x.mean() == pytest.approx(0.05) and x.std(ddof=1) == pytest.approx(1.2)


def test_no_edge_sits_at_the_floor() -> None:
    assert half_kelly_multiplier(outcomes(0.0, 1.0, 2000)) == 0.25
    assert half_kelly_multiplier(outcomes(-0.1, 1.0, 2000)) == 0.25


def test_a_clear_edge_is_sized_by_half_kelly_and_not_floored() -> None:
    # mean 0.02 R, sd 1 R, 2000 trades: shrink weight 2000*0.01 / (20 + 1) = 20/21
    x = outcomes(0.02, 1.0, 2000)
    mu = 0.02 * 20 / 21
    assert shrunk_mean(x) == pytest.approx(mu)
    # Kelly risks mu/sigma^2 of equity; the base position risks 1 % of it: half-Kelly = 0.5 * mu / 1 / 0.01
    assert half_kelly_multiplier(x) == pytest.approx(0.5 * mu / 0.01)
    assert 0.25 < half_kelly_multiplier(x) < 2.0
    assert half_kelly_multiplier(outcomes(0.2, 1.0, 2000)) == 2.0  # a strong edge is capped


def test_a_short_history_is_shrunk_toward_no_edge() -> None:
    long, short = outcomes(0.02, 1.0, 2000), outcomes(0.02, 1.0, 20)
    assert shrunk_mean(short) == pytest.approx(0.02 * 0.2 / 1.2)
    assert half_kelly_multiplier(short) < half_kelly_multiplier(long)
    assert half_kelly_multiplier(short) == 0.25  # 0.5 * 0.0033 / 0.01 = 0.17: floored


def test_half_kelly_is_fitted_per_strategy_on_the_training_window() -> None:
    a, b = outcomes(0.02, 1.0, 2000).tolist(), outcomes(-0.05, 1.0, 200).tolist()
    train = logged(a + b, strategy=["S1"] * len(a) + ["S4"] * len(b))
    pol = HalfKellyPolicy.fit(train)
    assert pol.by_strategy["S1"] == pytest.approx(half_kelly_multiplier(np.array(a)))
    assert pol.by_strategy["S4"] == 0.25
    later = logged([-9.0, -9.0, 1.0], strategy=["S1", "S4", "S9"])  # held-out outcomes do not matter
    np.testing.assert_allclose(pol.multipliers(later), [pol.by_strategy["S1"], 0.25, 0.25])


def test_vol_target_has_mean_one_on_its_training_window_per_symbol() -> None:
    rng = np.random.default_rng(1)
    stock = np.exp(rng.normal(np.log(0.02), 0.5, size=300))  # daily stock: ATR ~2 % of price
    fx = np.exp(rng.normal(np.log(0.001), 0.5, size=300))  # hourly currency: ~0.1 %
    order = rng.permutation(600)
    atr, symbol = np.concatenate((stock, fx))[order], np.array(["STOCK"] * 300 + ["FX"] * 300)[order]
    train = logged([0.0] * 600, extra={"sig_atr_pct": atr.tolist()}, symbol=symbol.tolist())
    pol = VolTargetPolicy.fit(train)
    m = pol.multipliers(train)
    assert m.mean() == pytest.approx(1.0, abs=1e-9)
    for s in ("STOCK", "FX"):
        assert m[symbol == s].mean() == pytest.approx(1.0, abs=1e-9)
        assert np.ptp(m[symbol == s]) > 0.5  # it does spread size by volatility
    calm, wild, unseen = pol.multipliers(
        logged([0.0] * 3, extra={"sig_atr_pct": [0.005, 0.08, 0.02]}, symbol=["STOCK", "STOCK", "NEW"])
    )
    assert calm > 1.0 > wild and 0.25 <= unseen <= 2.0


def test_every_baseline_is_a_policy_with_one_multiplier_per_row() -> None:
    data = synthetic_signals(n_episodes=10, trades_per_episode=3, seed=0)
    agent = SizingAgent(data.features.mean(axis=0), data.features.std(axis=0), hidden=(4,))
    for pol in (FixedPolicy(), RulePolicy(), HalfKellyPolicy.fit(data), VolTargetPolicy.fit(data), ModelPolicy(agent)):
        assert isinstance(pol, Policy)
        m = pol.multipliers(data)
        assert m.shape == (len(data),) and np.all((m >= 0.25) & (m <= 2.0))


def test_rule_policy_sees_its_own_drawdown() -> None:
    """The rules halve size beyond 3R of session drawdown: the replay must feed them the drawdown
    implied by their own sizes (trades closed earlier that day), not the recorded column (99)."""
    n = 6
    data = logged([-2.0] * n, extra={"sig_q_score": [0.5] * n, "sig_atr_pct": [0.02] * n})
    got = RulePolicy().multipliers(data)
    expected, pnl, peak = [], 0.0, 0.0
    for _ in range(n):
        m, _ = rule_multiplier({"sig_q_score": 0.5, "sig_atr_pct": 0.02, "acct_drawdown_r": peak - pnl})
        expected.append(m)
        pnl += m * -2.0  # each trade closes before the next signal
        peak = max(peak, pnl)
    np.testing.assert_allclose(got, expected)
    assert got[0] > got[-1]  # it cut size after the losses
