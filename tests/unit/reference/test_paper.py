"""Paper execution: entry at the next open, brackets, gaps, stop-first ambiguity, time exit, costs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rlsizer.reference.paper import Order, PaperBar, PaperConfig, Position, enter, exit_now, step

T0 = datetime(2024, 1, 2, tzinfo=UTC)
FREE = PaperConfig(slippage_bps=0.0, fee_per_unit=0.0)


def bar(i: int, o: float, h: float, l: float, c: float) -> PaperBar:
    return PaperBar(start=T0 + timedelta(hours=i), end=T0 + timedelta(hours=i + 1), open=o, high=h, low=l, close=c)


def order(side: str = "BUY", **kw: object) -> Order:
    values: dict[str, object] = dict(signal_id="sig-1", symbol="X", side=side, qty=10.0, max_hold_bars=3)
    values.update(stop_price=95.0, target_price=110.0) if side == "BUY" else values.update(
        stop_price=105.0, target_price=90.0
    )
    values.update(kw)
    return Order(**values)  # type: ignore[arg-type]


def opened(o: Order, b: PaperBar, cfg: PaperConfig = FREE) -> Position:
    entered = enter(o, b, cfg)
    assert entered is not None
    return entered[0]


def test_entry_at_next_open_with_slippage_and_fee() -> None:
    cfg = PaperConfig(slippage_bps=10.0, fee_per_unit=0.01)
    pos, fill = enter(order("BUY"), bar(1, 100, 101, 99, 100), cfg) or (None, None)
    assert fill is not None and pos is not None
    assert fill.price == pytest.approx(100.1) and fill.leg == "ENTRY" and fill.side == "BUY"
    assert fill.fee == pytest.approx(0.1) and fill.ts_event == T0 + timedelta(hours=1)
    _, short_fill = enter(order("SELL"), bar(1, 100, 101, 99, 100), cfg) or (None, None)
    assert short_fill is not None and short_fill.price == pytest.approx(99.9)


def test_no_entry_when_the_open_is_already_through_a_level() -> None:
    assert enter(order("BUY"), bar(1, 94, 96, 93, 95), FREE) is None
    assert enter(order("BUY"), bar(1, 111, 112, 109, 110), FREE) is None
    assert enter(order("SELL"), bar(1, 106, 107, 104, 105), FREE) is None


def test_stop_wins_when_one_bar_spans_stop_and_target() -> None:
    pos = opened(order("BUY"), bar(1, 100, 100, 100, 100))
    _, fill = step(pos, bar(2, 100, 111, 94, 105), FREE)
    assert fill is not None and fill.exit_reason == "stop" and fill.price == 95.0 and fill.side == "SELL"


def test_target_and_stop_on_the_entry_bar() -> None:
    pos = opened(order("SELL"), bar(1, 100, 101, 89, 92))
    _, fill = step(pos, bar(1, 100, 101, 89, 92), FREE)
    assert fill is not None and fill.exit_reason == "target" and fill.price == 90.0 and fill.side == "BUY"
    assert fill.ts_event == T0 + timedelta(hours=2) and fill.leg == "EXIT" and fill.order_id == "sig-1:exit"


def test_gap_through_the_stop_exits_at_the_worse_open() -> None:
    cfg = PaperConfig(slippage_bps=10.0)
    pos = opened(order("BUY"), bar(1, 100, 101, 99, 100), cfg)
    pos, fill = step(pos, bar(1, 100, 101, 99, 100), cfg)
    assert fill is None
    _, fill = step(pos, bar(2, 90, 92, 88, 91), cfg)
    assert fill is not None and fill.exit_reason == "stop" and fill.price == pytest.approx(90 * 0.999)


def test_gap_through_the_target_fills_at_the_better_open_without_slippage() -> None:
    cfg = PaperConfig(slippage_bps=10.0)
    pos = opened(order("BUY"), bar(1, 100, 101, 99, 100), cfg)
    pos, _ = step(pos, bar(1, 100, 101, 99, 100), cfg)
    _, fill = step(pos, bar(2, 112, 113, 111, 112), cfg)
    assert fill is not None and fill.exit_reason == "target" and fill.price == 112.0


def test_time_exit_after_max_hold_bars_at_the_close() -> None:
    pos = opened(order("BUY", max_hold_bars=3), bar(1, 100, 101, 99, 100))
    fills = []
    for i, c in ((1, 100.5), (2, 101.0), (3, 102.0), (4, 103.0)):
        pos, fill = step(pos, bar(i, c, c + 0.5, c - 0.5, c), FREE)
        fills.append(fill)
    assert fills[:2] == [None, None]
    assert fills[2] is not None and fills[2].exit_reason == "time" and fills[2].price == 102.0


def test_manual_exit_at_the_end_of_data() -> None:
    pos = opened(order("SELL"), bar(1, 100, 101, 99, 100))
    fill = exit_now(pos, bar(5, 98, 99, 97, 98), PaperConfig(slippage_bps=0.0, fee_per_unit=0.5))
    assert fill.exit_reason == "manual" and fill.side == "BUY" and fill.price == 98 and fill.fee == 5.0


def test_fills_are_deterministic_for_replays() -> None:
    a = enter(order(), bar(1, 100, 101, 99, 100), FREE)
    b = enter(order(), bar(1, 100, 101, 99, 100), FREE)
    assert a is not None and b is not None and a[1].event_id == b[1].event_id
