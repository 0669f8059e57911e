"""The rollout's numpy copy of the agent computes what the torch agent computes."""

from __future__ import annotations

import numpy as np
import torch

from trainer.learning.policy_net import RolloutPolicy, SizingAgent, squash, squash_np, unsquash


def test_rollout_policy_matches_the_torch_agent_to_float32_rounding() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=12), rng.uniform(0.1, 3.0, size=12)
    agent = SizingAgent(mean, std, hidden=(16, 8), init_log_std=-0.3)
    with torch.no_grad():
        for p in agent.parameters():
            p.add_(0.3 * torch.randn_like(p))  # not the near-zero initial output layer
    x = (mean + std * rng.normal(size=(50, 12)) * 4).astype(np.float32)  # some beyond the +-10 clip
    x[0, 0] = 1e6
    policy = RolloutPolicy(agent)
    mu, value = policy(x)
    with torch.no_grad():
        t = torch.as_tensor(x)
        dist = agent.distribution(t)
        np.testing.assert_allclose(mu, dist.mean.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(value, agent.value(t).numpy(), rtol=1e-5, atol=1e-5)
        action = mu + policy.action_std * rng.standard_normal(50).astype(np.float32)
        np.testing.assert_allclose(
            policy.log_prob(action, mu), dist.log_prob(torch.as_tensor(action)).numpy(), rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(squash_np(action), squash(torch.as_tensor(action)).numpy(), rtol=1e-6)
    assert np.std(mu) > 0.1


def test_init_multiplier_starts_the_policy_at_that_size() -> None:
    agent = SizingAgent(np.zeros(3), np.ones(3), init_multiplier=1.0)
    assert abs(squash_np(np.array([unsquash(1.0)]))[0] - 1.0) < 1e-12
    np.testing.assert_allclose(agent.multipliers(np.random.default_rng(1).normal(size=(20, 3))), 1.0, atol=0.01)
