"""Performance metrics of a sizing policy from its per-trade rewards (in R, in the order given: a backtest's order).

Choices, stated once:
- Sharpe is per trade: mean / std (ddof=1) of per-trade rewards. When timestamps are given it
  is also annualised as per-trade Sharpe * sqrt(trades per year), with trades per year =
  (n - 1) / span in years (365.25-day years; trading runs around the clock). Risk-free = 0.
- Sortino: mean / downside deviation, downside deviation = sqrt(mean(min(r, 0)^2)) over all trades.
- Max drawdown: largest drop of the cumulative-R curve below its running peak, peak starting
  at 0 (so a first-trade loss counts), reported as a non-negative number.
- CVaR 5%: per *trade*, the mean of the worst 5% of per-trade rewards; and per *session*
  (``session_cvar_5``): the mean of the worst 5% of session returns, a session being a UTC day
  (the sum of the rewards of the trades whose signal was raised that day, as in training and in
  ``agents.account``'s session). The session tail is what CVaR-PPO constrains and what the gate
  compares; per-trade CVaR scales with the multiplier itself. Same estimator as training
  (``cvar``; with fewer than 20 sessions it is the worst session).
- Return / |session CVaR 5%|: total return per unit of the session tail (NaN when that tail is 0).
- Hit rate: fraction of trades with reward > 0.
- Bootstrap: moving-block bootstrap (blocks of consecutive trades, default length
  ceil(n^(1/3)), wrapped circularly) so serial dependence inside sessions is kept; seeded.
  Percentile intervals. ``paired_bootstrap`` resamples the *same* trade indices for two
  policies, which is what a comparison over the same signals needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from trainer.learning.risk import cvar

SECONDS_PER_YEAR = 365.25 * 24 * 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyMetrics:
    n_trades: int
    total_return: float
    mean_return: float
    sharpe_per_trade: float
    sharpe_annualised: float | None
    sortino: float
    max_drawdown: float
    cvar_5: float
    session_cvar_5: float
    """CVaR 5% of session (UTC day) returns; NaN without timestamps"""
    return_to_session_cvar: float
    """total_return / |session_cvar_5|; NaN when the session tail is 0 or unknown"""
    n_sessions: int
    hit_rate: float
    mean_multiplier: float | None
    total_return_ci: tuple[float, float]
    cvar_5_ci: tuple[float, float]


def max_drawdown(rewards: np.ndarray) -> float:
    curve = np.concatenate(([0.0], np.cumsum(rewards)))
    return float(np.max(np.maximum.accumulate(curve) - curve))


def sharpe(rewards: np.ndarray) -> float:
    if rewards.size < 2:
        return 0.0
    sd = float(np.std(rewards, ddof=1))
    return float(np.mean(rewards) / sd) if sd > 0 else 0.0


def sortino(rewards: np.ndarray) -> float:
    if rewards.size == 0:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(rewards, 0.0) ** 2)))
    return float(np.mean(rewards) / downside) if downside > 0 else 0.0


def annualised_sharpe(rewards: np.ndarray, ts: np.ndarray) -> float | None:
    if rewards.size < 2:
        return None
    span_s = (ts.max() - ts.min()) / np.timedelta64(1, "s")
    if span_s <= 0:
        return None
    trades_per_year = (rewards.size - 1) / (span_s / SECONDS_PER_YEAR)
    return sharpe(rewards) * math.sqrt(trades_per_year)


def block_indices(n: int, n_boot: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n] resampled indices: circular moving blocks of ``block`` consecutive trades."""
    n_blocks = math.ceil(n / block)
    starts = rng.integers(0, n, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]) % n
    return idx.reshape(n_boot, -1)[:, :n]


def default_block(n: int) -> int:
    return max(1, math.ceil(math.pow(n, 1.0 / 3.0)))


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(samples, [tail, 1.0 - tail])
    return float(lo), float(hi)


def bootstrap_ci(
    rewards: np.ndarray,
    stat: Callable[[np.ndarray], float],
    *,
    n_boot: int = 1000,
    confidence: float = 0.90,
    block: int | None = None,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of ``stat`` under the moving-block bootstrap."""
    r = np.asarray(rewards, dtype=np.float64)
    if r.size == 0:
        return (0.0, 0.0)
    idx = block_indices(r.size, n_boot, block or default_block(r.size), np.random.default_rng(seed))
    return _interval(np.array([stat(r[i]) for i in idx]), confidence)


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    stat: Callable[[np.ndarray], float],
    *,
    n_boot: int = 1000,
    block: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Bootstrap samples of stat(a) - stat(b), resampling the same trades for both."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired series must have the same shape, got {a.shape} and {b.shape}")
    idx = block_indices(a.size, n_boot, block or default_block(a.size), np.random.default_rng(seed))
    return np.array([stat(a[i]) - stat(b[i]) for i in idx])


def cvar_5(rewards: np.ndarray) -> float:
    return cvar(rewards, 0.05)


def session_returns(rewards: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Sum of rewards per UTC day of ``ts``, days in time order (only days that have a reward)."""
    days = np.asarray(ts).astype("datetime64[us]").astype("datetime64[D]")
    _, inverse = np.unique(days, return_inverse=True)
    return np.bincount(inverse.reshape(-1), weights=np.asarray(rewards, dtype=np.float64))


def return_to_tail(total_return: float, tail: float) -> float:
    """``total_return / |tail|``, NaN when the tail is 0 or not finite."""
    return float(total_return / abs(tail)) if math.isfinite(tail) and tail != 0.0 else math.nan


def policy_metrics(
    rewards: np.ndarray,
    *,
    ts: np.ndarray | None = None,
    multipliers: np.ndarray | None = None,
    n_boot: int = 1000,
    confidence: float = 0.90,
    seed: int = 0,
) -> PolicyMetrics:
    """All metrics of one time-ordered series of per-trade rewards in R."""
    r = np.asarray(rewards, dtype=np.float64)
    if r.size == 0:
        raise ValueError("no trades to measure")
    if ts is not None and ts.shape != r.shape:
        raise ValueError(f"ts must have shape {r.shape}, got {ts.shape}")
    sessions = session_returns(r, ts) if ts is not None else np.zeros(0)
    session_tail = cvar_5(sessions) if sessions.size else math.nan
    return PolicyMetrics(
        n_trades=int(r.size),
        total_return=float(r.sum()),
        mean_return=float(r.mean()),
        sharpe_per_trade=sharpe(r),
        sharpe_annualised=annualised_sharpe(r, ts) if ts is not None else None,
        sortino=sortino(r),
        max_drawdown=max_drawdown(r),
        cvar_5=cvar_5(r),
        session_cvar_5=session_tail,
        return_to_session_cvar=return_to_tail(float(r.sum()), session_tail),
        n_sessions=int(sessions.size),
        hit_rate=float(np.mean(r > 0)),
        mean_multiplier=float(np.mean(multipliers)) if multipliers is not None else None,
        total_return_ci=bootstrap_ci(r, np.sum, n_boot=n_boot, confidence=confidence, seed=seed),
        cvar_5_ci=bootstrap_ci(r, cvar_5, n_boot=n_boot, confidence=confidence, seed=seed),
    )
