"""The one-expression check of the usual values: an event is accepted, or refused with its message,
exactly as the field-by-field checks (the rules as written before that shortcut) decide."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import (
    POLICIES,
    SIDES,
    Event,
    FeaturesComputed,
    InvalidEvent,
    SignalRaised,
    SizeDecided,
    _finite,
    _non_empty,
    _non_negative,
    _one_of,
    _order_sides,
    _positive,
    _ts,
    _unit_interval,
    field_names,
)


class Text(str):
    pass


class Stamp(datetime):
    pass


_texts = st.sampled_from(["s", " ", "", "\u00a0", "\x85", " x ", "\t"]) | st.text(max_size=4) | st.text(max_size=3).map(Text) | st.none() | st.integers()
_stamps = (
    st.datetimes(timezones=st.just(timezone.utc) | st.just(timezone(timedelta(hours=-3))))
    | st.datetimes()
    | st.datetimes(timezones=st.just(timezone.utc)).map(lambda d: Stamp.fromtimestamp(d.timestamp(), timezone.utc))
    | st.integers()
)
_numbers = (
    st.floats()
    | st.sampled_from([0.0, -0.0, 0.25, 2.0, 2.0000000000000004, 0.24999999999999997,
    1.0000000000000002, -5e-324, float("inf"), float("-inf"), float("nan")])
    | st.integers(-(2**1100), 2**1100)
    | st.booleans()
    | st.floats().map(np.float64)
    | st.none()
    | st.text(max_size=2)
)


def _kinds(event_type: type[Event]) -> dict[str, st.SearchStrategy[Any]]:
    strategies: dict[str, st.SearchStrategy[Any]] = {}
    for name in field_names(event_type):
        if name in ("ts_event", "ts_init"):
            strategies[name] = _stamps
        elif name == "side":
            strategies[name] = st.sampled_from(SIDES) | _texts
        elif name == "policy":
            strategies[name] = st.sampled_from(POLICIES) | _texts
        elif name in ("latency_us",):
            strategies[name] = st.integers(-3, 2**70) | st.booleans() | st.floats(-2, 2)
        elif name in ("attrs",):
            strategies[name] = st.just({})
        elif name in ("features",):
            strategies[name] = st.just({"a": 1.0})
        elif name in ("model_version",):
            strategies[name] = st.none() | st.text(max_size=2)
        elif name in ("price", "atr", "score", "q_score", "base_qty", "stop_price", "target_price", "multiplier", "qty"):
            strategies[name] = _numbers
        else:
            strategies[name] = _texts
    return strategies


def _rules(event: Any) -> None:
    """The checks of each event, field by field in their order, as they were before the shortcut."""
    _non_empty("event_id", event.event_id)
    _ts("ts_event", event.ts_event)
    _ts("ts_init", event.ts_init)
    _non_empty("signal_id", event.signal_id)
    if isinstance(event, SignalRaised):
        _non_empty("strategy_id", event.strategy_id)
        _non_empty("symbol", event.symbol)
        _one_of("side", event.side, SIDES)
        _positive("price", event.price)
        _non_negative("atr", event.atr)
        _finite("score", event.score)
        _unit_interval("q_score", event.q_score)
        _positive("base_qty", event.base_qty)
        for name in ("stop_price", "target_price"):
            if getattr(event, name) is not None:
                _positive(name, getattr(event, name))
        _order_sides(event.side, event.price, event.stop_price, event.target_price)
    elif isinstance(event, SizeDecided):
        _finite("multiplier", event.multiplier)
        if not 0.25 <= event.multiplier <= 2.0:
            raise InvalidEvent(f"multiplier must be in [0.25, 2.0], got {event.multiplier}")
        _non_negative("qty", event.qty)
        _one_of("policy", event.policy, POLICIES)
        if event.latency_us < 0:
            raise InvalidEvent(f"latency_us must be >= 0, got {event.latency_us}")


def _outcome(action: Any) -> tuple[str, str]:
    try:
        action()
    except Exception as exc:  # noqa: BLE001 (the type and message are what is compared)
        return type(exc).__name__, str(exc)
    return "ok", ""


T0 = datetime(2024, 1, 2, 14, 30, tzinfo=timezone.utc)
_BASE: dict[type[Event], dict[str, Any]] = {
    SignalRaised: dict(event_id="e", ts_event=T0, ts_init=T0, signal_id="s", strategy_id="S1", symbol="A", side="BUY",
                       price=1.0, atr=0.0, score=0.0, q_score=0.5, base_qty=1.0, stop_price=None, target_price=2.0,
                       adapter="a", attrs={}),
    SizeDecided: dict(event_id="e", ts_event=T0, ts_init=T0, signal_id="s", symbol="A", strategy_id="S1", multiplier=1.0,
                      qty=0.0, policy="RULES", reason="r", model_version=None, latency_us=0),
    FeaturesComputed: dict(event_id="e", ts_event=T0, ts_init=T0, signal_id="s", symbol="A", strategy_id="S1",
                           strategy_type="EmaCross", feature_set="fs1", features={"a": 1.0}),
}


@st.composite
def _values(draw: st.DrawFn) -> tuple[type[Event], dict[str, Any]]:
    """A valid event's values with a few of them (often none) drawn from anything."""
    event_type = draw(st.sampled_from(list(_BASE)))
    kinds = _kinds(event_type)
    names = draw(st.lists(st.sampled_from(field_names(event_type)), max_size=3, unique=True))
    return event_type, _BASE[event_type] | {name: draw(kinds[name]) for name in names}


@settings(max_examples=3000, deadline=None)
@given(_values())
def test_construction_accepts_and_refuses_as_the_field_by_field_rules(drawn: tuple[type[Event], dict[str, Any]]) -> None:
    event_type, values = drawn
    bare = object.__new__(event_type)  # the same values, no __post_init__
    for name, value in values.items():
        object.__setattr__(bare, name, value)
    got = _outcome(lambda: event_type(**values))
    want = _outcome(lambda: _rules(bare))
    assert got == want
    if got[0] == "ok":
        event = event_type(**values)
        for name in field_names(event_type):
            if name not in ("attrs", "features"):
                assert getattr(event, name) is values[name]


_EDGES: list[Any] = [
    None, "", " ", "\u00a0", "\x85", "x", " x", Text("x"), Text(""), "BUY", "SELL", "RULES", "MODEL", "buy",
    0, 1, -1, True, False, 2**1100, 0.0, -0.0, 1.0, -1.0, 0.25, 2.0, 2.0000000000000004, 0.24999999999999997,
    float("inf"), float("-inf"), float("nan"), 1e308, np.float64(1.0), np.float64("nan"),
    T0, datetime(2024, 1, 2), T0.astimezone(timezone(timedelta(hours=5))), Stamp.fromtimestamp(0, timezone.utc),
    datetime(1970, 1, 21, 3, 5, tzinfo=timezone.utc),  # Date.now() milliseconds read as microseconds
    datetime(1989, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc), datetime(1990, 1, 1, tzinfo=timezone.utc),
]


def test_each_field_at_its_edges_alone() -> None:
    """Every field of a valid event replaced by each edge value in turn: the same outcome as the rules."""
    for event_type, base in _BASE.items():
        for name in field_names(event_type):
            if name in ("attrs", "features"):
                continue
            for value in _EDGES:
                values = base | {name: value}
                bare = object.__new__(event_type)
                for key, item in values.items():
                    object.__setattr__(bare, key, item)
                assert _outcome(lambda: event_type(**values)) == _outcome(lambda: _rules(bare)), (event_type, name, value)
