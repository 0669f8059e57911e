from __future__ import annotations

import math

import numpy as np
import pytest

from trainer.evaluation.metrics import (
    annualised_sharpe,
    block_indices,
    bootstrap_ci,
    max_drawdown,
    paired_bootstrap,
    policy_metrics,
    sortino,
)


def test_max_drawdown_counts_from_zero_and_tracks_the_peak() -> None:
    assert max_drawdown(np.array([-1.0, 2.0, -3.0, 1.0])) == pytest.approx(3.0)  # peak 1 -> -2
    assert max_drawdown(np.array([-2.0, 1.0])) == pytest.approx(2.0)  # below the starting 0
    assert max_drawdown(np.array([1.0, 1.0])) == 0.0


def test_point_metrics_by_hand() -> None:
    r = np.array([2.0, -1.0, 0.0, 3.0])
    m = policy_metrics(r, multipliers=np.array([1.0, 0.5, 1.0, 1.5]), n_boot=50)
    assert m.total_return == 4.0 and m.mean_return == 1.0
    assert m.sharpe_per_trade == pytest.approx(1.0 / np.std(r, ddof=1))
    assert m.sortino == pytest.approx(1.0 / math.sqrt(1.0 / 4.0))
    assert m.hit_rate == 0.5 and m.mean_multiplier == 1.0
    assert m.cvar_5 == -1.0  # 5% of 4 trades < 1 trade: the worst trade


def test_annualised_sharpe_scales_with_trade_frequency() -> None:
    r = np.array([1.0, -0.5, 0.7, 0.1, -0.2])
    day = np.datetime64("2024-01-01", "us") + np.arange(5).astype("timedelta64[D]").astype("timedelta64[us]")
    per_trade = policy_metrics(r, n_boot=10).sharpe_per_trade
    assert annualised_sharpe(r, day) == pytest.approx(per_trade * math.sqrt(365.25))
    assert annualised_sharpe(r, np.full(5, day[0])) is None


def test_sortino_of_no_losses_is_zero_not_infinite() -> None:
    assert sortino(np.array([1.0, 2.0])) == 0.0


def test_block_indices_are_consecutive_runs() -> None:
    idx = block_indices(10, 5, 3, np.random.default_rng(0))
    assert idx.shape == (5, 10)
    runs = idx[:, :3]
    np.testing.assert_array_equal((runs[:, 1:] - runs[:, :-1]) % 10, 1)


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(0.2, 1.0, size=300)
    a = bootstrap_ci(r, np.sum, n_boot=400, seed=7)
    assert a == bootstrap_ci(r, np.sum, n_boot=400, seed=7)
    assert a != bootstrap_ci(r, np.sum, n_boot=400, seed=8)
    assert a[0] < r.sum() < a[1]


def test_paired_bootstrap_of_a_shifted_copy_is_the_shift() -> None:
    r = np.random.default_rng(2).normal(size=100)
    diffs = paired_bootstrap(r + 0.1, r, np.sum, n_boot=50)
    np.testing.assert_allclose(diffs, 100 * 0.1)
    with pytest.raises(ValueError, match="same shape"):
        paired_bootstrap(r, r[:-1], np.sum)


def test_session_tail_sums_each_utc_day_and_the_ratio_uses_its_magnitude() -> None:
    from trainer.evaluation.metrics import return_to_tail, session_returns

    hours = np.array([0, 5, 23, 24, 30, 49], dtype="timedelta64[h]")
    ts = np.datetime64("2024-01-01T00:00", "us") + hours.astype("timedelta64[us]")
    r = np.array([1.0, -3.0, 0.5, -1.0, -1.0, 2.0])
    np.testing.assert_allclose(session_returns(r, ts), [-1.5, -2.0, 2.0])  # midnight starts a session
    m = policy_metrics(r, ts=ts, n_boot=10)
    assert m.n_sessions == 3 and m.session_cvar_5 == -2.0  # 5% of 3 sessions: the worst one
    assert m.return_to_session_cvar == pytest.approx(-1.5 / 2.0)
    assert math.isnan(return_to_tail(1.0, 0.0)) and math.isnan(policy_metrics(r, n_boot=10).session_cvar_5)
