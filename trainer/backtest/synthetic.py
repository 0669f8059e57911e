"""Seeded synthetic recorded signals with a learnable structure, for tests and benchmarks.

Structure a sizing policy can learn:
- expected R rises with ``sig_q_score`` (``q_slope`` R per unit of q above 0.5, default 0.6);
- family edge: EmaCross +0.05, MeanReversion +0.10, Momentum +0.05 mean R with N(0, 0.8) noise;
- Breakout has the best body (mean +0.5) but a fat left tail: with probability ``tail_prob``
  the trade gaps through its stop for about ``tail_loss`` R. Its mean stays positive, so a
  mean-maximiser sizes it up while a CVaR-constrained policy should size it down;
- one-hot family columns ``fam_<Family>`` tell the policy the family.

Each session is one UTC day with ``trades_per_episode`` signals 20 minutes apart, spread over
``n_symbols`` symbols in turn; each trade closes ``hold_minutes`` (random, 5..90 by default)
after its signal, with a recorded ``TradeClosed``, so the account features (open risk, the
session's closed P&L) are live's, computed by the environment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from agents.strategy_map import DEFAULT_STRATEGY_MAP, FAMILIES
from schemas.events import SignalRaised, TradeClosed
from trainer.backtest.logged_signals import account_log
from trainer.learning.environment import ACCOUNT_FEATURES, LoggedSignals

_FAMILY_EDGE = {"EmaCross": 0.05, "MeanReversion": 0.10, "Breakout": 0.5, "Momentum": 0.05}
_STRATEGY = {
    family: min((s for s, f in DEFAULT_STRATEGY_MAP.items() if f == family), key=lambda s: int(s[1:]))
    for family in FAMILIES
}


def synthetic_signals(
    *,
    n_episodes: int = 200,
    trades_per_episode: int = 10,
    seed: int = 0,
    tail_prob: float = 0.08,
    tail_loss: float = 4.0,
    cost_r: float = 0.02,
    q_slope: float = 0.6,
    n_symbols: int = 4,
    hold_minutes: tuple[int, int] = (5, 90),
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
    hold = rng.integers(hold_minutes[0], hold_minutes[1] + 1, size=n)

    names = (
        *ACCOUNT_FEATURES,
        "bars_available",
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
    acct = np.zeros((n, len(ACCOUNT_FEATURES)))  # the environment computes these per policy
    features = np.column_stack(
        (acct, np.full(n, 200.0), q, score, atr_pct, win_rate, mean_r, n_trades, one_hot, noise_cols)
    )

    session = np.repeat(np.arange(n_episodes, dtype=np.int64), trades_per_episode)
    minute = np.tile(np.arange(trades_per_episode), n_episodes) * 20
    day0 = datetime.fromisoformat(start).replace(tzinfo=UTC)
    symbols = np.array([f"SYN{i}" for i in range(n_symbols)])[np.arange(n) % n_symbols]
    signals: list[SignalRaised] = []
    events: list[tuple[datetime, int, int, SignalRaised | TradeClosed]] = []
    for i in range(n):
        at = day0 + timedelta(days=int(session[i]), minutes=int(minute[i]))
        sig = SignalRaised(
            ts_event=at,
            ts_init=at,
            signal_id=f"syn-{seed}-{i}",
            strategy_id=_STRATEGY[str(family[i])],
            symbol=str(symbols[i]),
            side="BUY",
            price=100.0,
            atr=100.0 * float(atr_pct[i]),
            score=float(score[i]),
            q_score=float(q[i]),
            base_qty=1.0,
            stop_price=100.0 - 100.0 * float(atr_pct[i]),
        )
        exit_at = at + timedelta(minutes=int(hold[i]))
        close = TradeClosed(
            ts_event=exit_at,
            ts_init=exit_at,
            signal_id=sig.signal_id,
            symbol=sig.symbol,
            strategy_id=sig.strategy_id,
            side="BUY",
            qty=1.0,
            entry_price=100.0,
            exit_price=max(1.0, 100.0 + float(r[i])),
            entry_ts=at,
            exit_ts=exit_at,
            pnl=float(r[i]),
            r_multiple=float(r[i]),
            exit_reason="target" if r[i] > 0 else "stop",
        )
        signals.append(sig)
        events += [
            (at, 1, i, sig),
            (exit_at, 0, i, close),
        ]  # a close at a signal's time is applied first, as in the backtest
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    log = account_log((e[3] for e in events), signals, {})
    ts = np.array([s.ts_event.replace(tzinfo=None) for s in signals], dtype="datetime64[us]")
    closed_at = ts + (hold.astype("timedelta64[m]")).astype("timedelta64[us]")
    return LoggedSignals(
        features=features,
        feature_names=names,
        r_multiple=r.astype(np.float64),
        cost_r=np.full(n, cost_r, dtype=np.float64),
        family=family,
        ts=ts,
        symbol=symbols,
        row_id=np.arange(n, dtype=np.int64),
        account=log,
        outcome_ts=closed_at,
    )
