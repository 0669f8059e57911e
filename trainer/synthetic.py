"""Seeded synthetic logged signals with a learnable structure, for tests and benchmarks.

Structure a sizing policy can learn:
- expected R rises with ``sig_q_score`` (``q_slope`` R per unit of q above 0.5, default 0.6);
- family edge: EmaCross +0.05, MeanReversion +0.10, Momentum +0.05 mean R with N(0, 0.8) noise;
- Breakout has the best body (mean +0.5) but a fat left tail: with probability ``tail_prob``
  the trade gaps through its stop for about ``tail_loss`` R. Its mean stays positive, so a
  mean-maximiser sizes it up while a CVaR-constrained policy should size it down;
- one-hot family columns ``fam_<Family>`` tell the policy the family.
"""

from __future__ import annotations

import numpy as np

from trainer.environment import ACCOUNT_FEATURES, FAMILIES, LoggedSignals

_FAMILY_EDGE = {"EmaCross": 0.05, "MeanReversion": 0.10, "Breakout": 0.5, "Momentum": 0.05}


def synthetic_signals(
    *,
    n_episodes: int = 200,
    trades_per_episode: int = 10,
    seed: int = 0,
    tail_prob: float = 0.08,
    tail_loss: float = 4.0,
    cost_r: float = 0.02,
    q_slope: float = 0.6,
    start: str = "2024-01-01T00:00:00",
) -> LoggedSignals:
    """``n_episodes`` daily sessions of ``trades_per_episode`` trades each, time-ordered."""
    rng = np.random.default_rng(seed)
    n = n_episodes * trades_per_episode
    family = np.array(FAMILIES)[rng.integers(0, len(FAMILIES), size=n)]
    q = rng.uniform(0.0, 1.0, size=n)
    score = rng.normal(0.0, 1.0, size=n)
    atr_pct = np.exp(rng.normal(np.log(0.01), 0.4, size=n))
    edge = np.array([_FAMILY_EDGE[f] for f in family]) + q_slope * (q - 0.5)
    noise = np.where(family == "Breakout", rng.normal(0.0, 0.5, size=n), rng.normal(0.0, 0.8, size=n))
    r = edge + noise
    gap = (family == "Breakout") & (rng.uniform(size=n) < tail_prob)
    r = np.where(gap, -tail_loss + rng.normal(0.0, 0.3, size=n), r)

    win_rate = np.clip(0.5 + 0.2 * (edge - 0.1) + rng.normal(0.0, 0.03, size=n), 0.0, 1.0)
    mean_r = edge + rng.normal(0.0, 0.05, size=n)
    n_trades = rng.integers(20, 500, size=n).astype(np.float64)
    one_hot = np.stack([(family == f).astype(np.float64) for f in FAMILIES], axis=1)
    noise_cols = rng.normal(0.0, 1.0, size=(n, 2))

    names = (
        *ACCOUNT_FEATURES,
        "sig_q_score",
        "sig_score",
        "sig_atr_pct",
        "strat_win_rate",
        "strat_mean_r",
        "strat_n_trades",
        *(f"fam_{f}" for f in FAMILIES),
        "noise_a",
        "noise_b",
    )
    logged_acct = np.zeros((n, 3))  # logged at size 1; the environment recomputes these
    features = np.column_stack(
        (logged_acct, q, score, atr_pct, win_rate, mean_r, n_trades, one_hot, noise_cols)
    ).astype(np.float32)

    episode_id = np.repeat(np.arange(n_episodes, dtype=np.int64), trades_per_episode)
    day = np.datetime64(start, "us") + episode_id.astype("timedelta64[D]").astype("timedelta64[us]")
    minute = np.tile(np.arange(trades_per_episode), n_episodes) * 20
    ts = day + (minute.astype("timedelta64[m]")).astype("timedelta64[us]")
    return LoggedSignals(
        features=features,
        feature_names=names,
        r_multiple=r.astype(np.float64),
        cost_r=np.full(n, cost_r, dtype=np.float64),
        episode_id=episode_id,
        family=family,
        ts=ts,
    )
