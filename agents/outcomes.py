"""Trade outcomes from fills: pure functions, no Kafka, no Faust.

A trade is the round trip of one signal: ``open_trade(signal, entry_fill)`` starts
it, ``mark(trade, bar)`` accumulates the maximum adverse / favourable excursion
from bars that close while it is open, ``marked_by_bars`` recomputes them at the exit
from the bars the worker holds, ``close_trade(trade, exit_fill)`` yields the
``TradeClosed`` event.

Definitions (per unit, ``s`` = +1 for a long, -1 for a short):

- initial risk = ``|entry - stop|`` from the signal's stop, else the signal's ATR;
- gross = ``s * (exit - entry) * qty``; ``pnl`` = gross - entry fee - exit fee;
- ``r_multiple`` = ``s * (exit - entry) / risk`` (gross, before fees);
- ``mae_r`` <= 0 and ``mfe_r`` >= 0: the worst and best ``s * (price - entry)``
  at the low/high of the bars closing after the entry and at or before the exit, and
  at the exit price, over the risk.

Partial fills are not modelled: the exit must close the entry's quantity.
Failures raise ``OutcomeRejected`` whose ``kind`` is one of ``orphan_fill``,
``exit_before_entry``, ``duplicate``, ``mismatch``, ``no_risk``.
The ``TradeClosed`` event id derives from the signal id, so replays are idempotent.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

import numpy as np

from agents.timestamps import to_micros
from schemas.events import BarClosed, OrderFilled, SignalRaised, TradeClosed

_OUTCOME_NAMESPACE: Final = uuid.UUID("a3d5f0e6-8c1b-4f7e-9e61-2b0c5d7e4f90")
KINDS: Final = ("orphan_fill", "exit_before_entry", "duplicate", "mismatch", "no_risk")


class OutcomeRejected(ValueError):
    """A fill that cannot be turned into an outcome; ``kind`` is for the dead-letter record."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenTrade:
    signal_id: str
    symbol: str
    strategy_id: str
    side: str
    qty: float
    entry_price: float
    entry_ts: datetime
    entry_fee: float
    entry_event_id: str
    risk_per_unit: float
    mae: float = 0.0  # worst s * (price - entry) seen, price units, <= 0
    mfe: float = 0.0  # best s * (price - entry) seen, price units, >= 0
    last_bar_ts: datetime | None = None

    @property
    def sign(self) -> float:
        return 1.0 if self.side == "BUY" else -1.0

    def excursion(self, price: float) -> float:
        return self.sign * (price - self.entry_price)


def open_trade(signal: SignalRaised, entry_fill: OrderFilled) -> OpenTrade:
    if entry_fill.signal_id != signal.signal_id:
        raise OutcomeRejected(
            "orphan_fill",
            f"entry fill {entry_fill.order_id} is for signal {entry_fill.signal_id!r}, not {signal.signal_id!r}",
        )
    if entry_fill.leg != "ENTRY":
        raise OutcomeRejected(
            "exit_before_entry",
            f"signal {signal.signal_id!r}: exit fill {entry_fill.order_id} arrived before any entry fill",
        )
    if entry_fill.side != signal.side or entry_fill.symbol != signal.symbol:
        raise OutcomeRejected(
            "mismatch",
            f"signal {signal.signal_id!r} is {signal.side} {signal.symbol} but its entry fill is {entry_fill.side} {entry_fill.symbol}",
        )
    risk = abs(entry_fill.price - signal.stop_price) if signal.stop_price is not None else 0.0
    if not risk > 0:
        risk = signal.atr
    if not (math.isfinite(risk) and risk > 0):
        raise OutcomeRejected(
            "no_risk", f"signal {signal.signal_id!r}: no stop distance and ATR {signal.atr}, so R is undefined"
        )
    return OpenTrade(
        signal_id=signal.signal_id,
        symbol=signal.symbol,
        strategy_id=signal.strategy_id,
        side=signal.side,
        qty=entry_fill.qty,
        entry_price=entry_fill.price,
        entry_ts=entry_fill.ts_event,
        entry_fee=entry_fill.fee,
        entry_event_id=entry_fill.event_id,
        risk_per_unit=risk,
    )


def mark(trade: OpenTrade, bar: BarClosed) -> OpenTrade:
    """Fold one closed bar into the excursions; bars of other symbols, closing at or before the entry
    (their range is before the fill) or already seen are ignored."""
    if bar.symbol != trade.symbol or bar.ts_event <= trade.entry_ts:
        return trade
    if trade.last_bar_ts is not None and bar.ts_event <= trade.last_bar_ts:
        return trade
    a, b = trade.excursion(bar.low), trade.excursion(bar.high)
    return replace(trade, mae=min(trade.mae, a, b), mfe=max(trade.mfe, a, b), last_bar_ts=bar.ts_event)


def marked_by_bars(
    trade: OpenTrade, ts_us: np.ndarray, high: np.ndarray, low: np.ndarray, *, until: datetime, complete: bool
) -> OpenTrade:
    """``trade`` with the excursions of the bars closing after its entry and at or before ``until`` (the exit).

    ``ts_us``, ``high``, ``low``: the symbol's bars. With ``complete`` (they hold every bar
    of the symbol since the entry) the excursions are those bars' alone, so a trade's MAE/MFE
    do not depend on whether the worker read a bar before or after a fill (bars and fills
    come on different topics). Without it (a trade longer than the bars kept) they are
    added to what ``mark`` folded in while the trade was open.
    """
    keep = (ts_us > to_micros(trade.entry_ts)) & (ts_us <= to_micros(until))
    mae, mfe = (0.0, 0.0) if complete else (trade.mae, trade.mfe)
    if keep.any():
        sign = trade.sign
        moves = np.concatenate((sign * (high[keep] - trade.entry_price), sign * (low[keep] - trade.entry_price)))
        mae, mfe = min(mae, float(moves.min())), max(mfe, float(moves.max()))
    return replace(trade, mae=mae, mfe=mfe)


def close_trade(trade: OpenTrade, exit_fill: OrderFilled, *, ts_init: datetime) -> TradeClosed:
    if exit_fill.signal_id != trade.signal_id:
        raise OutcomeRejected(
            "orphan_fill",
            f"exit fill {exit_fill.order_id} is for signal {exit_fill.signal_id!r}, not {trade.signal_id!r}",
        )
    if exit_fill.leg == "ENTRY":
        raise OutcomeRejected(
            "duplicate", f"signal {trade.signal_id!r} already has an entry fill; got another ({exit_fill.order_id})"
        )
    if exit_fill.ts_event < trade.entry_ts:
        raise OutcomeRejected(
            "exit_before_entry",
            f"signal {trade.signal_id!r}: exit at {exit_fill.ts_event} is before entry at {trade.entry_ts}",
        )
    expected_side = "SELL" if trade.side == "BUY" else "BUY"
    if exit_fill.side != expected_side or not math.isclose(exit_fill.qty, trade.qty, rel_tol=1e-9):
        raise OutcomeRejected(
            "mismatch",
            f"signal {trade.signal_id!r}: exit {exit_fill.side} {exit_fill.qty} does not close entry {trade.side} {trade.qty}",
        )
    move = trade.excursion(exit_fill.price)
    fees = trade.entry_fee + exit_fill.fee
    risk = trade.risk_per_unit
    return TradeClosed(
        event_id=str(uuid.uuid5(_OUTCOME_NAMESPACE, trade.signal_id)),
        ts_event=exit_fill.ts_event,
        ts_init=ts_init,
        signal_id=trade.signal_id,
        symbol=trade.symbol,
        strategy_id=trade.strategy_id,
        side=trade.side,
        qty=trade.qty,
        entry_price=trade.entry_price,
        exit_price=exit_fill.price,
        entry_ts=trade.entry_ts,
        exit_ts=exit_fill.ts_event,
        pnl=move * trade.qty - fees,
        fees=fees,
        r_multiple=move / risk,
        mae_r=min(trade.mae, move) / risk,
        mfe_r=max(trade.mfe, move) / risk,
        exit_reason=exit_fill.exit_reason or "unknown",
    )


def reject_fill(fill: OrderFilled, *, signal_known: bool, trade: str) -> OutcomeRejected | None:
    """Why ``fill`` cannot be applied given the signal's state, or ``None`` if it can.

    ``trade`` is ``"none"`` (no entry yet), ``"open"`` or ``"closed"``. The glue
    calls this before ``open_trade`` / ``close_trade`` and dead-letters a rejection.
    Redelivered fills (same ``event_id``) are deduplicated before this, by the glue.
    """
    if not signal_known:
        return OutcomeRejected(
            "orphan_fill",
            f"fill {fill.order_id} names signal {fill.signal_id!r}, which was never "
            "raised, or was decided longer ago than the worker remembers (RLSIZER_DECIDED_RETENTION_DAYS)",
        )
    if trade == "closed":
        return OutcomeRejected(
            "duplicate", f"signal {fill.signal_id!r} is already closed; fill {fill.order_id} is a duplicate"
        )
    if trade == "none" and fill.leg == "EXIT":
        return OutcomeRejected(
            "exit_before_entry", f"signal {fill.signal_id!r}: exit fill {fill.order_id} arrived before any entry fill"
        )
    if trade == "open" and fill.leg == "ENTRY":
        return OutcomeRejected(
            "duplicate", f"signal {fill.signal_id!r}: second entry fill {fill.order_id} while the trade is open"
        )
    return None


def holding_seconds(closed: TradeClosed) -> float:
    return (closed.exit_ts - closed.entry_ts).total_seconds()
