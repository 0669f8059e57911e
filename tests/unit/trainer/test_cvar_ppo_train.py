from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.backtest.synthetic import synthetic_signals
from trainer.learning.cvar_ppo import TrainConfig, cvar, train
from trainer.learning.environment import episode_returns, replay
from trainer.learning.served import warmed_up

TINY = dict(total_updates=3, hidden=(8, 8), epochs=2, minibatch=64)


def _weight_bytes(model: torch.nn.Module) -> bytes:
    return b"".join(t.detach().numpy().tobytes() for t in model.state_dict().values())


def test_same_data_and_seed_give_identical_weights() -> None:
    data = synthetic_signals(n_episodes=40, trades_per_episode=4, seed=5)
    a = train(data, TrainConfig(seed=3, **TINY))
    b = train(data, TrainConfig(seed=3, **TINY))
    c = train(data, TrainConfig(seed=4, **TINY))
    assert _weight_bytes(a.model) == _weight_bytes(b.model)
    assert _weight_bytes(a.model) != _weight_bytes(c.model)

    def clockless(h):
        return [{k: v for k, v in row.items() if k != "charts/elapsed_s"} for row in h]

    assert clockless(a.history) == clockless(b.history)
    assert a.run_name == b.run_name != c.run_name


def test_train_restores_the_callers_torch_settings() -> None:
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    train(synthetic_signals(n_episodes=10, trades_per_episode=3, seed=1), TrainConfig(**TINY))
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, det)


def test_history_run_name_and_stored_normalisation() -> None:
    data = synthetic_signals(n_episodes=30, trades_per_episode=4, seed=2)
    res = train(data, TrainConfig(seed=1, alpha=0.1, beta=-1.5, **TINY))
    assert res.run_name.startswith("cvarppo_a0.1_b-1.5_lcb0.9_i1_s1_")  # the tail settings name the run
    assert len(res.history) == 3
    assert {"losses/policy", "losses/value", "charts/cvar", "charts/lambda", "charts/mean_return"} <= set(
        res.history[0]
    )
    np.testing.assert_allclose(res.model.feature_mean.numpy(), res.feature_mean.astype(np.float32))
    assert res.feature_names == data.feature_names


def test_plain_ppo_ablation_never_moves_lambda() -> None:
    data = synthetic_signals(n_episodes=30, trades_per_episode=4, seed=2)
    res = train(data, TrainConfig(seed=1, cvar_enabled=False, lambda_init=0.0, **TINY))
    assert res.run_name.startswith("ppo_i1_s1_")
    assert all(row["charts/lambda"] == 0.0 for row in res.history)


def test_cvar_ppo_sizes_down_the_fat_tailed_family() -> None:
    """Breakout has the best mean but a -4R gap tail. Plain PPO (mean only) sizes it above
    1x; CVaR-PPO with a binding constraint must size it clearly smaller, and its sessions'
    tail must be better than plain PPO's."""
    data = synthetic_signals(n_episodes=300, trades_per_episode=4, seed=0)
    common = dict(seed=1, total_updates=30, lr=3e-3, gamma=1.0, alpha=0.1, beta=-2.0, lr_lambda=0.2)
    plain = train(data, TrainConfig(cvar_enabled=False, **common))
    risk = train(data, TrainConfig(cvar_enabled=True, **common))

    breakout = data.family == "Breakout"
    plain_run = replay(data, warmed_up(data, plain.model.multipliers))
    risk_run = replay(data, warmed_up(data, risk.model.multipliers))
    m_plain = plain_run.multipliers[breakout].mean()
    m_risk = risk_run.multipliers[breakout].mean()
    assert m_risk < m_plain - 0.25, (m_risk, m_plain)
    assert m_risk < 1.0 - 0.1, m_risk  # below the fixed 1x baseline too
    assert risk.history[-1]["charts/lambda"] > 0.0
    tail_plain = cvar(episode_returns(data, plain_run.rewards), 0.1)
    tail_risk = cvar(episode_returns(data, risk_run.rewards), 0.1)
    assert tail_risk > tail_plain, (tail_risk, tail_plain)


def test_rejects_nonsense_config() -> None:
    with pytest.raises(ValueError, match="alpha"):
        TrainConfig(alpha=0.0)
    with pytest.raises(ValueError, match="hidden"):
        TrainConfig(hidden=())


def test_default_beta_is_the_fixed_size_tail_and_keeps_lambda_bounded():
    """With beta=None the constraint is the 1x policy's own CVaR: reachable, so lambda does not run to its cap."""
    from trainer.learning.cvar_ppo import fixed_size_cvar
    from trainer.learning.environment import episode_returns, trade_rewards
    from trainer.learning.risk import cvar

    data = synthetic_signals(n_episodes=40, trades_per_episode=4, seed=5)
    ones = np.ones(len(data))
    expected = cvar(episode_returns(data, trade_rewards(ones, data.r_multiple, data.cost_r)), 0.05)
    assert fixed_size_cvar(data, 0.05) == expected
    res = train(
        data,
        TrainConfig(seed=2, total_updates=12, lr_lambda=0.2, **{k: v for k, v in TINY.items() if k != "total_updates"}),
    )
    assert "bfixed" in res.run_name
    assert all(row["charts/beta"] == expected for row in res.history)
    assert max(row["charts/lambda"] for row in res.history) < TrainConfig().lambda_max


def test_the_tail_settings_are_checked_and_named() -> None:
    from trainer.learning.cvar_ppo import plain_ppo, run_name

    assert TrainConfig().tail_confidence == 0.9 and TrainConfig().init_multiplier == 1.0
    name = run_name(
        TrainConfig(beta_margin=0.2, size_cap=1.0, tail_confidence=None, init_multiplier=None, seed=4), "ab12"
    )
    assert name == "cvarppo_a0.05_bfixedm0.2_cap1_s4_ab12"
    assert (
        run_name(plain_ppo(TrainConfig(size_cap=1.0)), "ab12") == "ppo_i1_s1_ab12"
    )  # the ablation drops every constraint
    for bad in (dict(tail_confidence=0.3), dict(size_cap=3.0), dict(lr_size=-1.0)):
        with pytest.raises(ValueError):
            TrainConfig(**bad)


def test_a_size_cap_holds_the_mean_multiplier_down() -> None:
    data = synthetic_signals(n_episodes=150, trades_per_episode=4, seed=0, q_slope=2.0)  # an edge worth sizing up
    common = dict(seed=1, total_updates=25, lr=3e-3, cvar_enabled=False, tail_confidence=None)
    free = train(data, TrainConfig(**common))
    capped = train(data, TrainConfig(**common, size_cap=0.8, lr_size=1.0))
    assert free.history[-1]["charts/mean_multiplier"] > 1.0
    assert capped.history[-1]["charts/mean_multiplier"] < free.history[-1]["charts/mean_multiplier"] - 0.2
    assert max(row["charts/size_mu"] for row in capped.history) > 0.0  # the constraint was active on the way
