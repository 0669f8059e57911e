from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.account import AccountState, account_features, apply_decision, apply_trade
from agents.timestamps import to_micros
from schemas.events import SizeDecided, TradeClosed
from tests.unit.trainer.helpers import logged
from trainer.backtest.synthetic import synthetic_signals
from trainer.learning.environment import (
    ACCOUNT_FEATURES,
    LoggedSignals,
    _decision,
    episode_layout,
    episode_returns,
    replay,
    trade_rewards,
)


def acct(data: LoggedSignals, obs: np.ndarray, name: str) -> np.ndarray:
    return obs[:, data.feature_names.index(name)]


def test_account_features_are_the_catalogs_acct_columns() -> None:
    assert ACCOUNT_FEATURES == (
        "acct_session_pnl_r",
        "acct_drawdown_r",
        "acct_open_risk_r",
        "acct_session_trades",
        "acct_open_trades",
    )


def test_reward_is_multiplier_times_net_r_and_zero_without_an_outcome() -> None:
    got = trade_rewards(np.array([0.5, 2.0, 1.0]), np.array([2.0, -1.0, np.nan]), np.array([0.1, 0.1, np.nan]))
    np.testing.assert_allclose(got, [0.5 * 2.0 - 0.5 * 0.1, 2.0 * -1.0 - 2.0 * 0.1, 0.0])


def test_open_risk_is_the_sum_of_open_multipliers_and_session_pnl_counts_closed_trades_only() -> None:
    # signals at minutes 0, 1, 2, 3; trade 0 closes at 2.5, trade 1 at 1.5, trade 2 stays open
    data = logged([1.0, -2.0, 0.5, 1.0], hold_minutes=[2.5, 0.5, 5.0, 0.5])
    sizes = iter([2.0, 1.0, 0.5, 1.5])
    out = replay(data, lambda obs, rows: np.array([next(sizes) for _ in rows]))
    o = out.observations
    # minute 1: trade 0 open (2.0); minute 2: trade 1 closed at -2 x 1.0, trade 0 open;
    # minute 3: trade 0 closed at +1 x 2.0, trade 2 open (0.5)
    np.testing.assert_allclose(acct(data, o, "acct_open_risk_r"), [0.0, 2.0, 2.0, 0.5])
    np.testing.assert_allclose(acct(data, o, "acct_open_trades"), [0, 1, 1, 1])
    np.testing.assert_allclose(acct(data, o, "acct_session_pnl_r"), [0.0, 0.0, -2.0, 0.0])
    np.testing.assert_allclose(acct(data, o, "acct_drawdown_r"), [0.0, 0.0, 2.0, 0.0])
    np.testing.assert_allclose(acct(data, o, "acct_session_trades"), [0, 0, 1, 2])
    np.testing.assert_allclose(out.rewards, [2.0, -2.0, 0.25, 1.5])


def test_accounts_are_per_symbol() -> None:
    data = logged([1.0, 1.0, 1.0], symbol=["A", "B", "A"], hold_minutes=[10.0, 10.0, 10.0])
    out = replay(data, lambda obs, rows: np.full(rows.size, 1.5))
    np.testing.assert_allclose(acct(data, out.observations, "acct_open_risk_r"), [0.0, 0.0, 1.5])


def test_open_risk_carries_over_midnight_and_the_session_pnl_does_not() -> None:
    # trade 0 (day 0) is still open at the day-1 signal; trade 1 closes on day 1 before signal 2
    data = logged([1.0, -1.0, 0.5], episode=[0, 1, 1], hold_minutes=[3000.0, 0.5, 0.5])
    out = replay(data, lambda obs, rows: np.ones(rows.size))
    np.testing.assert_allclose(acct(data, out.observations, "acct_open_risk_r"), [0.0, 1.0, 1.0])
    np.testing.assert_allclose(acct(data, out.observations, "acct_session_pnl_r"), [0.0, 0.0, -1.0])
    np.testing.assert_allclose(episode_returns(data, out.rewards), [1.0, -0.5])


def test_a_signal_without_outcome_is_open_risk_but_not_scored() -> None:
    data = logged([math.nan, 1.0])
    out = replay(data, lambda obs, rows: np.full(rows.size, 2.0))
    assert list(data.scored) == [False, True]
    np.testing.assert_allclose(acct(data, out.observations, "acct_open_risk_r"), [0.0, 2.0])
    np.testing.assert_allclose(out.rewards, [0.0, 2.0])


def test_rows_outside_a_subset_are_decided_as_live_decided_them() -> None:
    full = logged([1.0, 1.0, 1.0], hold_minutes=[10.0, 10.0, 10.0])
    live = {0: 0.5, 1: 1.75, 2: 1.0}
    log = full.account
    recorded = tuple(_decision(log.signals[i], live[i]) for i in range(3))
    with_live = replace(full, account=type(log)(lanes=log.lanes, live=recorded, signals=log.signals))
    last = with_live.subset(np.array([False, False, True]))
    out = replay(last, lambda obs, rows: np.ones(rows.size))
    np.testing.assert_allclose(acct(last, out.observations, "acct_open_risk_r"), [0.5 + 1.75])


def test_layout_puts_longest_session_first_and_keeps_row_order() -> None:
    data = logged([0.0] * 6, episode=[1, 2, 2, 2, 3, 3])
    layout = episode_layout(data)
    np.testing.assert_array_equal(layout.index, [[1, 2, 3], [4, 5, -1], [0, -1, -1]])


def test_policy_multipliers_are_clipped_to_the_serving_range() -> None:
    out = replay(logged([1.0, 1.0]), lambda obs, rows: np.array([5.0, -1.0])[: rows.size])
    assert set(out.multipliers) <= {0.25, 2.0}


def test_rejects_missing_account_columns_and_mismatched_labels() -> None:
    good = logged([1.0, 2.0])
    with pytest.raises(ValueError, match="account-state"):
        replace(good, features=good.features[:, 5:], feature_names=good.feature_names[5:])
    with pytest.raises(ValueError, match="duplicates"):
        replace(good, row_id=np.array([0, 0]))
    with pytest.raises(ValueError, match="same rows"):
        replace(good, cost_r=np.array([np.nan, 0.0]))


def test_a_training_range_scores_only_outcomes_known_by_its_end() -> None:
    data = logged([1.0, -1.0, 2.0], hold_minutes=[0.5, 90.0, 0.5])  # signal 1 closes after the range below
    assert list(data.window(data.ts[0], data.ts[2]).scored) == [True, True]  # as a backtest of the window scores
    known = data.window(data.ts[0], data.ts[2], known_before=data.ts[2])
    assert len(known) == 2 and list(known.scored) == [True, False]
    out = replay(known, lambda obs, rows: np.ones(rows.size))
    np.testing.assert_allclose(out.rewards, [1.0, 0.0])


def sequential_reference(data: LoggedSignals, policy) -> tuple[np.ndarray, np.ndarray]:
    """One AccountState per symbol over all its events in order, one signal at a time: no pieces, no lock-step."""
    log = data.account
    position = {int(r): i for i, r in enumerate(data.row_id)}
    m_out = np.zeros(len(data))
    acct_out = np.zeros((len(data), len(ACCOUNT_FEATURES)))
    for items in log.lanes:
        account = AccountState()
        for item in items:
            if isinstance(item, TradeClosed):
                account = apply_trade(account, item)
            elif isinstance(item, SizeDecided):
                account = apply_decision(account, item)
            elif item in position:
                i = position[item]
                values = account_features(account, to_micros(log.signals[item].ts_event))
                obs = data.features[i].copy()
                for k, name in enumerate(ACCOUNT_FEATURES):
                    obs[data.feature_names.index(name)] = values[name]
                    acct_out[i, k] = values[name]
                m = float(np.clip(policy(obs[None, :], np.array([i]))[0], 0.25, 2.0))
                m_out[i] = m
                account = apply_decision(account, _decision(log.signals[item], m))
            elif log.live[item] is not None:
                account = apply_decision(account, log.live[item])
    return m_out, acct_out


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 30),
    n_symbols=st.integers(1, 3),
    max_hold=st.sampled_from([0.5, 30.0, 2000.0, 20000.0]),
    start=st.integers(0, 10),
)
def test_lanes_in_lock_step_give_exactly_the_sequential_account(
    seed: int, n: int, n_symbols: int, max_hold: float, start: int
) -> None:
    """Pieces replayed side by side must see what one account per symbol, event by event, sees."""
    rng = np.random.default_rng(seed)
    r = rng.normal(size=n).tolist()
    r = [x if rng.uniform() > 0.15 else math.nan for x in r]
    episode = np.sort(rng.integers(0, 4, size=n)).tolist()
    data = logged(
        r,
        episode=episode,
        symbol=[f"S{k}" for k in rng.integers(0, n_symbols, size=n)],
        hold_minutes=rng.uniform(0.1, max_hold, size=n).tolist(),
        cost=0.02,
    )
    data = data.subset(np.arange(min(start, n - 1), n))

    def policy(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:  # depends on every account column
        return 1.0 + np.tanh(obs[:, 0] - obs[:, 1] + 0.3 * obs[:, 2] - 0.1 * obs[:, 3] + 0.2 * obs[:, 4])

    out = replay(data, policy)
    m_ref, acct_ref = sequential_reference(data, policy)
    np.testing.assert_array_equal(out.multipliers, m_ref)
    np.testing.assert_array_equal(
        out.observations[:, [data.feature_names.index(c) for c in ACCOUNT_FEATURES]], acct_ref
    )


def test_synthetic_data_is_seeded_and_has_the_fat_tail() -> None:
    a = synthetic_signals(n_episodes=50, trades_per_episode=4, seed=3)
    b = synthetic_signals(n_episodes=50, trades_per_episode=4, seed=3)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != synthetic_signals(n_episodes=50, trades_per_episode=4, seed=4).fingerprint()
    big = synthetic_signals(n_episodes=500, trades_per_episode=4, seed=0)
    br = big.family == "Breakout"
    assert big.r_multiple[br].min() < -3.0 < big.r_multiple[~br].min()
    assert big.r_multiple[br].mean() > 0.0
    assert len(big.account.pieces) > 500  # trades close within their day: many independent lanes
