"""Risk pieces of the CVaR-constrained objective: empirical CVaR/VaR, Rockafellar-Uryasev, dual step.

All work on returns where *higher is better* (R): the tail is the lower tail.
"""

from __future__ import annotations

import math

import numpy as np


def _tail_size(n: int, alpha: float) -> float:
    return alpha * n


def value_at_risk(returns: np.ndarray, alpha: float) -> float:
    """Empirical VaR_alpha: the ceil(alpha n)-th smallest return (the RU maximiser)."""
    x = np.sort(np.asarray(returns, dtype=np.float64))
    k = max(1, math.ceil(_tail_size(x.size, alpha) - 1e-9))
    return float(x[k - 1])


def cvar(returns: np.ndarray, alpha: float) -> float:
    """Empirical CVaR_alpha: mean of the worst alpha fraction of returns (lower tail).

    When alpha * n is not an integer, the boundary observation enters with its fractional
    weight, which is exactly max_nu ru_objective(nu, returns, alpha).
    """
    x = np.sort(np.asarray(returns, dtype=np.float64))
    if x.size == 0:
        raise ValueError("cvar of an empty sample")
    m = _tail_size(x.size, alpha)
    if m <= 1.0:
        return float(x[0])
    k = math.floor(m + 1e-9)
    frac = m - k if m - k > 1e-9 else 0.0
    tail = x[:k].sum() + (frac * x[k] if frac > 0.0 else 0.0)
    return float(tail / m)


def ru_objective(nu: float, returns: np.ndarray, alpha: float) -> float:
    """Rockafellar-Uryasev: nu - E[(nu - G)^+] / alpha; its max over nu is CVaR_alpha(G)."""
    x = np.asarray(returns, dtype=np.float64)
    return float(nu - np.mean(np.maximum(nu - x, 0.0)) / alpha)


def dual_update(lam: float, cvar_est: float, beta: float, lr: float, lam_max: float = math.inf) -> float:
    """Projected dual ascent on CVaR >= beta: lambda <- clip(lambda + lr (beta - CVaR), 0, lam_max)."""
    return float(min(lam_max, max(0.0, lam + lr * (beta - cvar_est))))


def cvar_penalty(episode_return: np.ndarray, nu: float, lam: float, alpha: float) -> np.ndarray:
    """Per-episode terminal reward shift: -(lambda / alpha) * (nu - G)^+."""
    return -(lam / alpha) * np.maximum(nu - np.asarray(episode_return, dtype=np.float64), 0.0)
