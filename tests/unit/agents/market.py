"""Builders for market events in agent tests: real AAPL daily bars, signals, trades, decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from agents.features import SymbolState
from schemas.events import BarClosed, SignalRaised, SizeDecided, TradeClosed

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


@cache
def aapl_bars() -> tuple[BarClosed, ...]:
    """AAPL daily OHLCV 2000-2013 from bokeh_sampledata, each bar closing at 21:00 UTC."""
    from bokeh_sampledata.stocks import AAPL

    bars = []
    for i, day in enumerate(AAPL["date"]):
        bars.append(
            BarClosed(
                ts_event=datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(hours=21),
                ts_init=T0,
                event_id=f"bar-{i}",
                symbol="AAPL",
                interval="1d",
                open=float(AAPL["open"][i]),
                high=float(AAPL["high"][i]),
                low=float(AAPL["low"][i]),
                close=float(AAPL["close"][i]),
                volume=float(AAPL["volume"][i]),
            )
        )
    return tuple(bars)


def state_of(bars: tuple[BarClosed, ...] | list[BarClosed]) -> SymbolState | None:
    state = None
    for bar in bars:
        state = (state or SymbolState.empty_for(bar)).updated(bar)
    return state


def bar(ts: datetime, close: float = 100.0, **overrides: Any) -> BarClosed:
    values: dict[str, Any] = dict(
        ts_event=ts,
        ts_init=T0,
        symbol="AAPL",
        interval="1d",
        open=close,
        high=close * 1.01,
        low=close * 0.99,
        close=close,
        volume=1000.0,
    )
    values.update(overrides)
    return BarClosed(**values)


def signal(ts: datetime = T0, **overrides: Any) -> SignalRaised:
    """A valid signal; unless given, its stop is 3 % of the price against the trade and its target 6 % with it."""
    values: dict[str, Any] = dict(
        ts_event=ts,
        ts_init=ts,
        signal_id="sig-1",
        strategy_id="S1",
        symbol="AAPL",
        side="BUY",
        price=100.0,
        atr=2.0,
        score=1.2,
        q_score=0.6,
        base_qty=100.0,
        adapter="test",
    )
    values.update(overrides)
    sign = 1.0 if values["side"] == "BUY" else -1.0
    values.setdefault("stop_price", values["price"] * (1.0 - sign * 0.03))
    values.setdefault("target_price", values["price"] * (1.0 + sign * 0.06))
    return SignalRaised(**values)


def trade(signal_id: str, exit_ts: datetime, r: float, strategy_id: str = "S1", **overrides: Any) -> TradeClosed:
    values: dict[str, Any] = dict(
        ts_event=exit_ts,
        ts_init=exit_ts,
        signal_id=signal_id,
        symbol="AAPL",
        strategy_id=strategy_id,
        side="BUY",
        qty=100.0,
        entry_price=100.0,
        exit_price=100.0 + 3.0 * r,
        entry_ts=exit_ts - timedelta(hours=1),
        exit_ts=exit_ts,
        pnl=300.0 * r,
        r_multiple=r,
        exit_reason="target" if r > 0 else "stop",
    )
    values.update(overrides)
    return TradeClosed(**values)


def decision(signal_id: str, ts: datetime, multiplier: float) -> SizeDecided:
    return SizeDecided(
        ts_event=ts,
        ts_init=ts,
        signal_id=signal_id,
        symbol="AAPL",
        strategy_id="S1",
        multiplier=multiplier,
        qty=100.0 * multiplier,
        policy="RULES",
        reason="test",
        latency_us=1,
    )
