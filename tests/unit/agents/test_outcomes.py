"""Outcome math on hand-computed long and short trades, and the rejections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.outcomes import OutcomeRejected, close_trade, holding_seconds, mark, open_trade, reject_fill
from schemas.events import BarClosed, OrderFilled, SignalRaised

T0 = datetime(2024, 3, 1, 14, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)  # when the outcomes are made


def signal(**kw: Any) -> SignalRaised:
    v: dict[str, Any] = dict(
        ts_event=T0,
        signal_id="s1",
        strategy_id="S4",
        symbol="AAPL",
        side="BUY",
        price=100.0,
        atr=2.0,
        base_qty=10.0,
        stop_price=96.0,
        target_price=108.0,
    )
    v.update(kw)
    return SignalRaised(**v)


def fill(leg: str, **kw: Any) -> OrderFilled:
    v: dict[str, Any] = dict(
        ts_event=T0 + timedelta(hours=1),
        signal_id="s1",
        order_id=f"s1:{leg.lower()}",
        symbol="AAPL",
        side="BUY",
        qty=10.0,
        price=100.0,
        fee=0.0,
        leg=leg,
    )
    v.update(kw)
    return OrderFilled(**v)


def bar(hours: int, high: float, low: float, symbol: str = "AAPL") -> BarClosed:
    return BarClosed(
        ts_event=T0 + timedelta(hours=hours),
        symbol=symbol,
        interval="1h",
        open=low,
        high=high,
        low=low,
        close=low,
        volume=1.0,
    )


def test_long_trade_by_hand() -> None:
    # entry 100.5, stop 96 -> risk 4.5; exit 106.5 -> +6 per unit = 1.333 R; fees 0.5 + 0.7
    trade = open_trade(signal(), fill("ENTRY", price=100.5, fee=0.5))
    trade = mark(trade, bar(2, high=103.0, low=98.25))  # -2.25 / 4.5 = -0.5 R, +2.5
    trade = mark(trade, bar(3, high=107.75, low=101.0))  # +7.25 / 4.5 MFE
    closed = close_trade(
        trade,
        fill("EXIT", side="SELL", price=106.5, fee=0.7, ts_event=T0 + timedelta(hours=4), exit_reason="time"),
        ts_init=NOW,
    )
    assert closed.pnl == pytest.approx(6.0 * 10 - 1.2)
    assert closed.fees == pytest.approx(1.2)
    assert closed.r_multiple == pytest.approx(6.0 / 4.5)
    assert closed.mae_r == pytest.approx(-0.5)
    assert closed.mfe_r == pytest.approx(7.25 / 4.5)
    assert closed.exit_reason == "time" and holding_seconds(closed) == 3 * 3600
    assert closed.entry_ts == T0 + timedelta(hours=1) and closed.ts_event == closed.exit_ts


def test_short_trade_by_hand_with_atr_risk() -> None:
    # no stop: risk = ATR 2.0; short at 50, covered at 53 -> -3 per unit = -1.5 R, worst seen high 53.5
    sig = signal(side="SELL", price=50.0, atr=2.0, stop_price=None, target_price=None)
    trade = open_trade(sig, fill("ENTRY", side="SELL", price=50.0, qty=4.0, fee=0.1))
    trade = mark(trade, bar(2, high=53.5, low=49.0))
    closed = close_trade(
        trade,
        fill("EXIT", side="BUY", price=53.0, qty=4.0, fee=0.1, ts_event=T0 + timedelta(hours=3), exit_reason="stop"),
        ts_init=NOW,
    )
    assert closed.pnl == pytest.approx(-3.0 * 4 - 0.2)
    assert closed.r_multiple == pytest.approx(-1.5)
    assert closed.mae_r == pytest.approx(-1.75)
    assert closed.mfe_r == pytest.approx(0.5)


def test_exit_price_counts_in_excursions_and_foreign_or_old_bars_are_ignored() -> None:
    trade = open_trade(signal(), fill("ENTRY"))
    assert mark(trade, bar(2, 150.0, 50.0, symbol="MSFT")) == trade
    assert mark(trade, bar(0, 150.0, 50.0)) == trade  # closed before the entry
    once = mark(trade, bar(2, 101.0, 99.0))
    assert mark(once, bar(2, 150.0, 50.0)) == once  # same bar again (replay)
    closed = close_trade(once, fill("EXIT", side="SELL", price=90.0, ts_event=T0 + timedelta(hours=3)), ts_init=NOW)
    assert closed.mae_r == pytest.approx(-10 / 4) and closed.mfe_r == pytest.approx(1 / 4)


def test_outcome_id_is_stable_for_replays() -> None:
    trade = open_trade(signal(), fill("ENTRY"))
    exit_fill = fill("EXIT", side="SELL", price=101.0, ts_event=T0 + timedelta(hours=2))
    assert close_trade(trade, exit_fill, ts_init=NOW).event_id == close_trade(trade, exit_fill, ts_init=NOW).event_id


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda: open_trade(signal(), fill("ENTRY", signal_id="other")), "orphan_fill"),
        (lambda: open_trade(signal(), fill("EXIT", side="SELL")), "exit_before_entry"),
        (lambda: open_trade(signal(), fill("ENTRY", side="SELL")), "mismatch"),
        (lambda: open_trade(signal(stop_price=None, atr=0.0), fill("ENTRY")), "no_risk"),
        (lambda: close_trade(open_trade(signal(), fill("ENTRY")), fill("ENTRY"), ts_init=NOW), "duplicate"),
        (
            lambda: close_trade(
                open_trade(signal(), fill("ENTRY")), fill("EXIT", side="SELL", ts_event=T0), ts_init=NOW
            ),
            "exit_before_entry",
        ),
        (
            lambda: close_trade(open_trade(signal(), fill("ENTRY")), fill("EXIT", side="SELL", qty=5.0), ts_init=NOW),
            "mismatch",
        ),
        (
            lambda: close_trade(
                open_trade(signal(), fill("ENTRY")), fill("EXIT", side="SELL", signal_id="x"), ts_init=NOW
            ),
            "orphan_fill",
        ),
    ],
)
def test_rejections(make: Any, kind: str) -> None:
    with pytest.raises(OutcomeRejected) as info:
        make()
    assert info.value.kind == kind and isinstance(info.value, ValueError)


def test_reject_fill_by_state() -> None:
    assert reject_fill(fill("ENTRY"), signal_known=False, trade="none").kind == "orphan_fill"  # type: ignore[union-attr]
    assert reject_fill(fill("EXIT"), signal_known=True, trade="none").kind == "exit_before_entry"  # type: ignore[union-attr]
    assert reject_fill(fill("ENTRY"), signal_known=True, trade="open").kind == "duplicate"  # type: ignore[union-attr]
    assert reject_fill(fill("EXIT"), signal_known=True, trade="closed").kind == "duplicate"  # type: ignore[union-attr]
    assert reject_fill(fill("ENTRY"), signal_known=True, trade="none") is None
    assert reject_fill(fill("EXIT"), signal_known=True, trade="open") is None


prices = st.floats(min_value=1.0, max_value=1000.0, allow_nan=False)


@given(
    entry=prices,
    exit_=prices,
    stop_dist=st.floats(0.01, 100.0),
    side=st.sampled_from(["BUY", "SELL"]),
    qty=st.floats(0.01, 1e4),
)
def test_pnl_sign_follows_side_and_r_matches_pnl(
    entry: float, exit_: float, stop_dist: float, side: str, qty: float
) -> None:
    sign = 1 if side == "BUY" else -1
    stop = entry - sign * stop_dist
    if stop <= 0:
        return
    trade = open_trade(
        signal(side=side, price=entry, stop_price=stop, target_price=None),
        fill("ENTRY", side=side, price=entry, qty=qty),
    )
    closed = close_trade(
        trade,
        fill("EXIT", side="SELL" if side == "BUY" else "BUY", price=exit_, qty=qty, ts_event=T0 + timedelta(hours=2)),
        ts_init=NOW,
    )
    assert closed.pnl == pytest.approx(sign * (exit_ - entry) * qty, rel=1e-9, abs=1e-9)
    assert closed.r_multiple * abs(entry - stop) * qty == pytest.approx(closed.pnl, rel=1e-6, abs=1e-6)
    assert closed.mae_r <= 0 <= closed.mfe_r and closed.mae_r <= closed.r_multiple <= closed.mfe_r


def test_marked_by_bars_counts_the_bars_closing_after_the_entry_up_to_the_exit() -> None:
    import numpy as np

    from agents.outcomes import marked_by_bars
    from agents.timestamps import to_micros

    trade = open_trade(signal(), fill("ENTRY"))  # BUY at 100 at T0+1h, risk 4
    hours = [1, 2, 3, 4]  # the bar closing at the entry is before the fill; the one at 4h after the exit at 3h
    ts = np.array([to_micros(T0 + timedelta(hours=h)) for h in hours])
    high, low = np.array([150.0, 101.0, 103.0, 150.0]), np.array([50.0, 98.0, 99.5, 50.0])
    until = T0 + timedelta(hours=3)
    complete = marked_by_bars(trade, ts, high, low, until=until, complete=True)
    assert (complete.mae, complete.mfe) == (-2.0, 3.0)
    seen_open = mark(trade, bar(4, high=150.0, low=50.0))  # marked while open, though after the exit
    assert (marked_by_bars(seen_open, ts, high, low, until=until, complete=True).mae,) == (-2.0,)
    partial = marked_by_bars(seen_open, ts, high, low, until=until, complete=False)  # a trade longer than the ring
    assert (partial.mae, partial.mfe) == (-50.0, 50.0)  # the marks kept: what the ring lost is not known
    none = marked_by_bars(trade, ts[:1], high[:1], low[:1], until=until, complete=True)
    assert (none.mae, none.mfe) == (0.0, 0.0)


def test_a_symbol_state_knows_whether_it_still_holds_every_bar_since_a_time() -> None:
    from agents.features import SymbolState
    from agents.timestamps import to_micros

    state = SymbolState("AAPL", "1h", window=3)
    for h in range(1, 3):
        state = state.updated(bar(h, high=101.0, low=99.0))
    assert state.holds_all_since(0)  # not full: nothing dropped out
    for h in range(3, 5):
        state = state.updated(bar(h, high=101.0, low=99.0))  # full at 3h; the 1h bar drops out at 4h
    assert not state.holds_all_since(to_micros(T0))  # the 1h bar closed after it and is gone
    assert not state.holds_all_since(
        to_micros(T0 + timedelta(hours=1))
    )  # unknowable: a bar may have closed in (1h, 2h)
    assert state.holds_all_since(to_micros(T0 + timedelta(hours=2)))  # from the oldest bar held on, all are there
