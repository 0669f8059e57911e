from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from agents.features import BarRejected, StateCorrupt, SymbolState
from agents.timestamps import to_micros
from tests.unit.agents.market import T0, aapl_bars, bar, state_of


def test_out_of_order_and_duplicate_bars_are_rejected() -> None:
    state = state_of([bar(T0), bar(T0 + timedelta(days=1))])
    with pytest.raises(BarRejected) as dup:
        _on_bar(state, bar(T0 + timedelta(days=1), close=101.0))
    assert dup.value.kind == "duplicate"
    with pytest.raises(BarRejected) as late:
        _on_bar(state, bar(T0))
    assert late.value.kind == "out_of_order" and "earlier than the last bar" in late.value.reason


def test_bars_of_another_symbol_or_interval_are_rejected() -> None:
    state = state_of([bar(T0)])
    with pytest.raises(BarRejected) as other:
        _on_bar(state, bar(T0 + timedelta(days=1), symbol="MSFT"))
    assert other.value.kind == "symbol_mismatch"
    with pytest.raises(BarRejected) as itv:
        _on_bar(state, bar(T0 + timedelta(days=1), interval="1m"))
    assert itv.value.kind == "interval_mismatch"


def test_update_returns_a_new_state_and_leaves_the_old_one() -> None:
    s1 = state_of([bar(T0, close=100.0)])
    assert s1 is not None
    s2 = _on_bar(s1, bar(T0 + timedelta(days=1), close=110.0))
    assert s1.count == 1 and s2.count == 2
    assert list(s1.bars_until(2**62).close) == [100.0]
    assert list(s2.bars_until(2**62).close) == [100.0, 110.0]


def test_ring_keeps_the_last_window_bars_in_time_order() -> None:
    bars = aapl_bars()[:300]
    state = state_of(bars)
    assert state is not None and state.count == state.window == 250
    win = state.bars_until(2**62)
    np.testing.assert_array_equal(win.close, [b.close for b in bars[-250:]])
    limited = state.bars_until(to_micros(bars[-11].ts_event), limit=20)
    np.testing.assert_array_equal(limited.close, [b.close for b in bars[-30:-10]])
    assert np.all(np.diff(win.ts) > 0)


def test_bytes_roundtrip_preserves_state_and_future_updates() -> None:
    bars = aapl_bars()[:280]
    state = state_of(bars[:260])
    assert state is not None
    restored = SymbolState.from_bytes(state.to_bytes())
    assert restored == state and restored.to_bytes() == state.to_bytes()
    assert repr(restored) == repr(state)
    # the restored state continues exactly like the original
    a, b = state, restored
    for nxt in bars[260:]:
        a, b = _on_bar(a, nxt), _on_bar(b, nxt)
    assert a.to_bytes() == b.to_bytes()
    with pytest.raises(BarRejected):
        _on_bar(restored, bars[259])


def test_quotes_roundtrip_and_missing_quotes_are_nan() -> None:
    state = state_of([bar(T0), bar(T0 + timedelta(days=1), bid=99.9, ask=100.1, bid_size=5.0, ask_size=3.0)])
    assert state is not None
    win = SymbolState.from_bytes(state.to_bytes()).bars_until(2**62)
    assert np.isnan(win.bid[0]) and win.bid[1] == 99.9 and win.ask_size[1] == 3.0


@pytest.mark.parametrize("raw", [b"", b"XXXX" + bytes(20), None])
def test_corrupt_bytes_raise_state_corrupt(raw: bytes | None) -> None:
    if raw is None:  # a truncated valid state
        state = state_of([bar(T0)])
        assert state is not None
        raw = state.to_bytes()[:-5]
    with pytest.raises(StateCorrupt):
        SymbolState.from_bytes(raw)


def _on_bar(state, bar):
    """The bar state after ``bar`` (as a symbol's book keeps it)."""
    from agents.features import SymbolState

    return (state or SymbolState.empty_for(bar)).updated(bar)
