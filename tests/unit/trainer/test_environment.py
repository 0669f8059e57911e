from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.trainer.helpers import logged
from trainer.environment import (
    ACCOUNT_FEATURES,
    LoggedSignals,
    episode_layout,
    episode_returns,
    replay,
    trade_rewards,
)
from trainer.synthetic import synthetic_signals


def test_reward_is_multiplier_times_net_r() -> None:
    got = trade_rewards(np.array([0.5, 2.0]), np.array([2.0, -1.0]), np.array([0.1, 0.1]))
    np.testing.assert_allclose(got, [0.5 * 2.0 - 0.5 * 0.1, 2.0 * -1.0 - 2.0 * 0.1])


def test_account_columns_follow_the_policys_own_sizes() -> None:
    data = logged([1.0, -2.0, -1.0, 0.5], cost=0.0)
    sizes = iter([2.0, 1.0, 0.5, 1.0])
    out = replay(data, lambda obs: np.array([next(sizes)] * obs.shape[0]))
    acct = out.observations[:, [data.feature_names.index(c) for c in ACCOUNT_FEATURES]]
    # pnl: 0, 2, 0, -0.5 ; peak: 0, 2, 2, 2 ; drawdown = peak - pnl ; open risk = previous size
    np.testing.assert_allclose(acct[:, 0], [0.0, 2.0, 0.0, -0.5])
    np.testing.assert_allclose(acct[:, 1], [0.0, 0.0, 2.0, 2.5])
    np.testing.assert_allclose(acct[:, 2], [0.0, 2.0, 1.0, 0.5])
    np.testing.assert_allclose(out.rewards, [2.0, -2.0, -0.5, 0.5])


def test_account_state_resets_at_each_session() -> None:
    data = logged([-3.0, 1.0, 1.0], episode=[7, 7, 8])
    out = replay(data, lambda obs: np.ones(obs.shape[0]))
    pnl = out.observations[:, data.feature_names.index("acct_session_pnl_r")]
    np.testing.assert_allclose(pnl, [0.0, -3.0, 0.0])
    np.testing.assert_allclose(episode_returns(data, out.rewards), [-2.0, 1.0])


def test_layout_puts_longest_episode_first_and_keeps_row_order() -> None:
    data = logged([0.0] * 6, episode=[1, 2, 2, 2, 3, 3])
    layout = episode_layout(data)
    np.testing.assert_array_equal(layout.index, [[1, 2, 3], [4, 5, -1], [0, -1, -1]])
    np.testing.assert_array_equal(layout.active_at, [3, 2, 1])


def test_policy_multipliers_are_clipped_to_the_serving_range() -> None:
    out = replay(logged([1.0, 1.0]), lambda obs: np.array([5.0, -1.0])[: obs.shape[0]])
    assert set(out.multipliers) <= {0.25, 2.0}


def test_rejects_missing_account_columns_and_unordered_time() -> None:
    good = logged([1.0, 2.0])
    with pytest.raises(ValueError, match="account-state"):
        LoggedSignals(
            features=good.features[:, 3:],
            feature_names=good.feature_names[3:],
            r_multiple=good.r_multiple,
            cost_r=good.cost_r,
            episode_id=good.episode_id,
            family=good.family,
            ts=good.ts,
        )
    with pytest.raises(ValueError, match="time-ordered"):
        LoggedSignals(
            features=good.features,
            feature_names=good.feature_names,
            r_multiple=good.r_multiple,
            cost_r=good.cost_r,
            episode_id=good.episode_id,
            family=good.family,
            ts=good.ts[::-1],
        )


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), lengths=st.lists(st.integers(1, 6), min_size=1, max_size=6))
def test_each_session_replays_as_if_alone(seed: int, lengths: list[int]) -> None:
    """Lock-step batching must not leak state across sessions: replaying one session alone
    gives the same rewards as replaying it among others."""
    rng = np.random.default_rng(seed)
    episode = np.repeat(np.arange(len(lengths)), lengths).tolist()
    data = logged(rng.normal(size=len(episode)).tolist(), episode=episode, cost=0.03)

    def policy(obs: np.ndarray) -> np.ndarray:  # depends on account state
        return 1.0 + np.tanh(obs[:, 0] - obs[:, 1])

    together = replay(data, policy).rewards
    for e in range(len(lengths)):
        mask = np.asarray(episode) == e
        alone = replay(data.subset(mask), policy).rewards
        np.testing.assert_allclose(together[mask], alone, rtol=0, atol=1e-12)


def test_synthetic_data_is_seeded_and_has_the_fat_tail() -> None:
    a = synthetic_signals(n_episodes=50, trades_per_episode=4, seed=3)
    b = synthetic_signals(n_episodes=50, trades_per_episode=4, seed=3)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != synthetic_signals(n_episodes=50, trades_per_episode=4, seed=4).fingerprint()
    big = synthetic_signals(n_episodes=500, trades_per_episode=4, seed=0)
    br = big.family == "Breakout"
    assert big.r_multiple[br].min() < -3.0 < big.r_multiple[~br].min()
    assert big.r_multiple[br].mean() > 0.0
