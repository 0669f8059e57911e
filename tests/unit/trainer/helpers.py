"""Builders for small hand-made LoggedSignals with overridable defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from schemas.events import SignalRaised, TradeClosed
from trainer.backtest.logged_signals import account_log
from trainer.learning.environment import ACCOUNT_FEATURES, LoggedSignals

DAY0 = datetime(2024, 1, 1, tzinfo=UTC)


def logged(
    r: list[float],
    *,
    episode: list[int] | None = None,
    cost: float = 0.0,
    extra: dict[str, list[float]] | None = None,
    family: list[str] | None = None,
    symbol: list[str] | None = None,
    hold_minutes: list[float] | None = None,
    strategy: list[str] | None = None,
) -> LoggedSignals:
    """Row i is a signal at day ``episode[i]``, minute i; its trade closes ``hold_minutes[i]`` later
    (default half a minute: before the next signal). A NaN R is a signal without an outcome."""
    n = len(r)
    extra = extra or {"sig_q_score": [0.5] * n, "sig_atr_pct": [0.01] * n}
    extra = {"bars_available": [200.0] * n, **extra}
    names = (*ACCOUNT_FEATURES, *extra)
    feats = np.column_stack(
        [np.full((n, len(ACCOUNT_FEATURES)), 99.0)] + [np.asarray(v, dtype=np.float64) for v in extra.values()]
    )
    episode = episode if episode is not None else [0] * n
    symbol = symbol if symbol is not None else ["X"] * n
    hold = hold_minutes if hold_minutes is not None else [0.5] * n
    strategy = strategy if strategy is not None else ["S1"] * n
    signals, events, closed_at = [], [], []
    for i in range(n):
        at = DAY0 + timedelta(days=episode[i], minutes=i)
        sig = SignalRaised(
            ts_event=at,
            ts_init=at,
            signal_id=f"s{i}",
            strategy_id=strategy[i],
            symbol=symbol[i],
            side="BUY",
            price=100.0,
            atr=1.0,
            score=0.0,
            q_score=0.5,
            base_qty=1.0,
            stop_price=99.0,
        )
        signals.append(sig)
        events.append((at, 1, i, sig))
        closed_at.append(None)
        if not np.isnan(r[i]):
            out = at + timedelta(minutes=hold[i])
            closed_at[-1] = out.replace(tzinfo=None)
            events.append(
                (
                    out,
                    0,
                    i,
                    TradeClosed(
                        ts_event=out,
                        ts_init=out,
                        signal_id=sig.signal_id,
                        symbol=sig.symbol,
                        strategy_id=sig.strategy_id,
                        side="BUY",
                        qty=1.0,
                        entry_price=100.0,
                        exit_price=100.0,
                        entry_ts=at,
                        exit_ts=out,
                        pnl=0.0,
                        r_multiple=float(r[i]),
                        exit_reason="stop",
                    ),
                )
            )
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    rr = np.asarray(r, dtype=np.float64)
    return LoggedSignals(
        features=feats,
        feature_names=names,
        r_multiple=rr,
        cost_r=np.where(np.isnan(rr), np.nan, cost),
        family=np.asarray(family if family is not None else ["EmaCross"] * n),
        ts=np.array([s.ts_event.replace(tzinfo=None) for s in signals], dtype="datetime64[us]"),
        symbol=np.asarray(symbol),
        row_id=np.arange(n, dtype=np.int64),
        account=account_log((e[3] for e in events), signals, {}),
        outcome_ts=np.array(closed_at, dtype="datetime64[us]"),
    )
