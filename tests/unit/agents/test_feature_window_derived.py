"""``SymbolState.derived``: bar features computed once per bar selection, equal to computing them afresh."""

from __future__ import annotations

from datetime import timedelta

from agents.features import FEATURE_BARS
from agents.features.bars import bar_features
from agents.timestamps import to_micros
from tests.unit.agents.market import aapl_bars, state_of


def test_derived_is_computed_once_per_selection_and_matches_a_fresh_computation():
    bars = aapl_bars()[:240]
    state = state_of(bars)
    calls = []

    def counted(window):
        calls.append(len(window))
        return bar_features(window)

    after_last = to_micros(bars[-1].ts_event) + 1
    between = to_micros(bars[-20].ts_event) + 1  # a late signal: 19 bars after it are excluded
    for at in (after_last, after_last + 10**9, between, between + 1, after_last):
        got = state.derived(counted, at, limit=FEATURE_BARS)
        assert got == bar_features(state.bars_until(at, limit=FEATURE_BARS))
    assert calls == [FEATURE_BARS, FEATURE_BARS]  # one per distinct bar selection
    assert state.derived(counted, between) == bar_features(state.bars_until(between))  # the limit is part of the key
    assert len(calls) == 3


def test_a_new_bar_gives_a_new_state_with_its_own_values():
    bars = aapl_bars()[:241]
    old = state_of(bars[:-1])
    far = to_micros(bars[-1].ts_event + timedelta(days=1))
    before = old.derived(bar_features, far, limit=FEATURE_BARS)
    new = _on_bar(old, bars[-1])
    after = new.derived(bar_features, far, limit=FEATURE_BARS)
    assert after == bar_features(new.bars_until(far, limit=FEATURE_BARS))
    assert after["close"] == bars[-1].close != before["close"]
    assert old.derived(bar_features, far, limit=FEATURE_BARS) is before


def _on_bar(state, bar):
    """The bar state after ``bar`` (as a symbol's book keeps it)."""
    from agents.features import SymbolState

    return (state or SymbolState.empty_for(bar)).updated(bar)
