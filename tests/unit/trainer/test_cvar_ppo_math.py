from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.learning.cvar_ppo import cvar, cvar_penalty, dual_update, gae, ppo_clip_loss, ru_objective, value_at_risk

finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)


def test_gae_hand_computed() -> None:
    # one episode of 2 steps then one of 1 step; gamma=0.5, lambda=0.5
    rewards = np.array([1.0, 2.0, 3.0])
    values = np.array([0.5, 1.0, 2.0])
    dones = np.array([0.0, 1.0, 1.0])
    adv, ret = gae(rewards, values, dones, gamma=0.5, lam=0.5)
    d1 = 2.0 - 1.0  # terminal: no bootstrap
    d0 = 1.0 + 0.5 * 1.0 - 0.5
    np.testing.assert_allclose(adv, [d0 + 0.25 * d1, d1, 3.0 - 2.0])
    np.testing.assert_allclose(ret, adv + values)


def _gae_brute(rewards, values, dones, gamma, lam):
    """Advantage as the lambda-weighted sum of TD errors up to the episode end."""
    n = len(rewards)
    adv = np.zeros(n)
    for t in range(n):
        total, weight = 0.0, 1.0
        for u in range(t, n):
            nxt = values[u + 1] if (u + 1 < n and not dones[u]) else 0.0
            total += weight * (rewards[u] + gamma * nxt - values[u])
            if dones[u]:
                break
            weight *= gamma * lam
        adv[t] = total
    return adv


@settings(max_examples=50, deadline=None)
@given(
    data=st.lists(st.tuples(finite, finite, st.booleans()), min_size=1, max_size=12),
    gamma=st.floats(0.0, 1.0),
    lam=st.floats(0.0, 1.0),
)
def test_gae_matches_brute_force(data, gamma, lam) -> None:
    r, v, d = (np.array(x, dtype=np.float64) for x in zip(*data, strict=True))
    d[-1] = True
    adv, _ = gae(r, v, d, gamma, lam)
    np.testing.assert_allclose(adv, _gae_brute(r, v, d, gamma, lam), rtol=1e-9, atol=1e-7)


def test_gae_batched_columns_are_independent() -> None:
    rng = np.random.default_rng(0)
    r, v = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    d = np.zeros((5, 3))
    d[-1] = 1
    d[2, 1] = 1
    adv, _ = gae(r, v, d, 0.9, 0.8)
    for b in range(3):
        np.testing.assert_allclose(adv[:, b], gae(r[:, b], v[:, b], d[:, b], 0.9, 0.8)[0])


def _cvar_brute(x: np.ndarray, alpha: float) -> float:
    """Tail mean with the boundary atom weighted by its fraction, computed by walking a sort."""
    xs = sorted(x.tolist())
    mass, total, budget = 0.0, 0.0, alpha * len(xs)
    for v in xs:
        take = min(1.0, budget - mass)
        if take <= 1e-12:
            break
        total += take * v
        mass += take
    return total / mass


@settings(max_examples=100, deadline=None)
@given(x=st.lists(finite, min_size=1, max_size=60), alpha=st.floats(0.01, 1.0))
def test_cvar_matches_brute_force_sort(x, alpha) -> None:
    arr = np.array(x)
    if alpha * arr.size < 1:
        assert cvar(arr, alpha) == arr.min()
    else:
        assert cvar(arr, alpha) == pytest.approx(_cvar_brute(arr, alpha), rel=1e-9, abs=1e-9)


def test_cvar_of_known_sample() -> None:
    x = np.arange(1.0, 101.0)  # 1..100
    assert cvar(x, 0.05) == pytest.approx(np.mean([1, 2, 3, 4, 5]))
    assert cvar(x, 1.0) == pytest.approx(x.mean())


@settings(max_examples=60, deadline=None)
@given(x=st.lists(finite, min_size=1, max_size=40), alpha=st.floats(0.02, 1.0))
def test_ru_objective_is_maximised_at_var_and_equals_cvar(x, alpha) -> None:
    arr = np.array(x)
    nu_star = value_at_risk(arr, alpha)
    best = ru_objective(nu_star, arr, alpha)
    assert best == pytest.approx(cvar(arr, alpha), rel=1e-9, abs=1e-9)
    grid = np.linspace(arr.min() - 5, arr.max() + 5, 101)
    assert all(ru_objective(nu, arr, alpha) <= best + 1e-9 for nu in grid)


def test_dual_update_rises_while_violated_and_falls_back_to_zero() -> None:
    beta, lr = -2.0, 0.5
    lam = 0.0
    trace = []
    for est in [-4.0, -3.0, -2.5]:  # constraint violated
        lam = dual_update(lam, est, beta, lr)
        trace.append(lam)
    assert trace == sorted(trace) and trace[0] > 0
    for est in [-1.0, 0.0, 0.0, 0.0]:  # constraint holds with slack
        lam = dual_update(lam, est, beta, lr)
        assert lam >= 0.0
    assert lam == 0.0
    assert dual_update(1.0, -10.0, beta, lr, lam_max=2.0) == 2.0


def test_cvar_penalty_only_hits_the_tail() -> None:
    pen = cvar_penalty(np.array([-5.0, -1.0, 3.0]), nu=-1.0, lam=0.1, alpha=0.05)
    np.testing.assert_allclose(pen, [-(0.1 / 0.05) * 4.0, 0.0, 0.0])


def test_ppo_clip_loss_equals_unclipped_inside_the_trust_region() -> None:
    ratio = torch.tensor([0.85, 1.0, 1.15])
    adv = torch.tensor([1.0, -2.0, 0.5])
    assert float(ppo_clip_loss(ratio, adv, 0.2)) == pytest.approx(float((-adv * ratio).mean()))


def test_ppo_clip_loss_clips_outside() -> None:
    eps = 0.2
    # positive advantage, ratio too high: no extra credit beyond 1+eps
    assert float(ppo_clip_loss(torch.tensor([1.5]), torch.tensor([2.0]), eps)) == pytest.approx(-2.0 * 1.2)
    # negative advantage, ratio too low: no extra credit below 1-eps
    assert float(ppo_clip_loss(torch.tensor([0.5]), torch.tensor([-2.0]), eps)) == pytest.approx(2.0 * 0.8)
    # pessimistic side is not clipped: negative advantage with ratio high keeps the full penalty
    assert float(ppo_clip_loss(torch.tensor([1.5]), torch.tensor([-2.0]), eps)) == pytest.approx(2.0 * 1.5)
    assert not math.isnan(float(ppo_clip_loss(torch.tensor([3.0]), torch.tensor([0.0]), eps)))
