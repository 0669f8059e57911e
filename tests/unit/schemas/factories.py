"""Valid events with overridable defaults (NautilusTrader's test-kit style)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas.events import BarClosed, SignalRaised

T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)


def make_bar(**overrides: Any) -> BarClosed:
    values: dict[str, Any] = dict(
        event_id="00000000-0000-4000-8000-000000000001",
        ts_event=T0,
        ts_init=T0,
        symbol="AAPL",
        interval="1d",
        open=100.0,
        high=102.0,
        low=99.0,
        close=101.0,
        volume=12345.0,
    )
    values.update(overrides)
    return BarClosed(**values)


def make_signal(**overrides: Any) -> SignalRaised:
    values: dict[str, Any] = dict(
        ts_event=T0,
        signal_id="sig-1",
        strategy_id="S1",
        symbol="AAPL",
        side="BUY",
        price=101.0,
        atr=2.0,
        score=0.7,
        q_score=0.9,
        base_qty=10.0,
        adapter="test",
    )
    values.update(overrides)
    return SignalRaised(**values)
