"""Every rule refuses what it should, on both paths: the scalar check (with its message) and the
column-wise check of a replay; usual values pass both, the scalar one through its fast path.

``DECLARED`` is the specification, written out: one or more cases per rule of every event
(``schemas.events``), each with the exact message. A rule dropped from a field fails its cases;
a rule added without a case fails ``test_every_declared_rule_has_a_case``.
The vocabulary tests below hold each form of each rule (``schemas.rules``) to its check: the
fast path's ``usual`` form and the ``column`` form may refuse more (the check then decides), never less.
"""

from __future__ import annotations

import io
import math
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas.rules as rules
from schemas.catalog import schema_dict
from schemas.columnar import decode_columns
from schemas.events import (
    EVENT_TYPES,
    MULTIPLIER_MAX,
    MULTIPLIER_MIN,
    SIDES,
    BarClosed,
    Event,
    EventRejected,
    FeaturesComputed,
    HealthChecked,
    InvalidEvent,
    ModelPublished,
    OrderFilled,
    SignalRaised,
    SizeDecided,
    TradeClosed,
    field_names,
)
from schemas.rules import (
    BAR_RANGE,
    COUNT,
    EXIT_AFTER_ENTRY,
    FINITE,
    FINITE_VALUES,
    NON_EMPTY,
    NON_NEGATIVE,
    PLAUSIBLE_TIME,
    POSITIVE,
    QUOTE_NOT_CROSSED,
    RULE,
    STOP_AND_TARGET_SIDES,
    UNIT_INTERVAL,
    CrossRule,
    Rule,
    in_range,
    optional,
    surely_valid,
)

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
UTC = UTC

# Usual values of every event: exact types (float, str, aware UTC datetimes), so the fast path takes them.
BASE: dict[type[Event], dict[str, Any]] = {
    BarClosed: dict(
        event_id="e1",
        ts_event=T0,
        ts_init=T0,
        symbol="AAPL",
        interval="1m",
        open=100.0,
        high=102.0,
        low=99.0,
        close=101.0,
        volume=5.0,
        bid=100.5,
        ask=100.75,
        bid_size=1.0,
        ask_size=0.0,
    ),
    SignalRaised: dict(
        event_id="e2",
        ts_event=T0,
        ts_init=T0,
        signal_id="s1",
        strategy_id="S1",
        symbol="AAPL",
        side="BUY",
        price=100.0,
        atr=1.0,
        score=0.0,
        q_score=0.5,
        base_qty=1.0,
        stop_price=99.0,
        target_price=102.0,
        adapter="a",
        attrs={"tf": "1m"},
    ),
    FeaturesComputed: dict(
        event_id="e3",
        ts_event=T0,
        ts_init=T0,
        signal_id="s1",
        symbol="AAPL",
        strategy_id="S1",
        strategy_type="EmaCross",
        feature_set="fs1",
        features={"a": 1.0, "rsi": 41.5},
    ),
    SizeDecided: dict(
        event_id="e4",
        ts_event=T0,
        ts_init=T0,
        signal_id="s1",
        symbol="AAPL",
        strategy_id="S1",
        multiplier=1.0,
        qty=0.0,
        policy="RULES",
        reason="r",
        model_version=None,
        latency_us=0,
    ),
    OrderFilled: dict(
        event_id="e5",
        ts_event=T0,
        ts_init=T0,
        signal_id="s1",
        order_id="o1",
        symbol="AAPL",
        side="SELL",
        qty=1.0,
        price=101.0,
        fee=0.0,
        leg="EXIT",
        exit_reason="stop",
    ),
    TradeClosed: dict(
        event_id="e6",
        ts_event=T0,
        ts_init=T0,
        signal_id="s1",
        symbol="AAPL",
        strategy_id="S1",
        side="BUY",
        qty=1.0,
        entry_price=100.0,
        exit_price=99.0,
        entry_ts=T0,
        exit_ts=T0,
        pnl=-1.0,
        fees=0.0,
        r_multiple=-1.0,
        mae_r=-1.0,
        mfe_r=0.2,
        exit_reason="stop",
    ),
    ModelPublished: dict(
        event_id="e7",
        ts_event=T0,
        ts_init=T0,
        model_name="m",
        version="v1",
        artifact_uri="s3://a",
        manifest_uri="s3://m",
        sha256="x",
        signature="y",
        feature_set="fs1",
        alias=None,
        metrics={"sharpe": 1.2},
    ),
    HealthChecked: dict(
        event_id="e8", ts_event=T0, ts_init=T0, component="worker", check="lag", status="OK", detail="", action=None
    ),
    EventRejected: dict(
        event_id="e9",
        ts_event=T0,
        ts_init=T0,
        source_topic="t",
        source_partition=0,
        source_offset=1,
        raw_key=None,
        raw_value=b"x",
        reason="r",
        error_type="malformed",
    ),
}

MS = datetime(1970, 1, 21, 3, 5, 41, tzinfo=UTC)  # 2025-02-09 in milliseconds, read as microseconds
MS_TEXT = (
    "1970-01-21T03:05:41+00:00 (1739141000000 microseconds since the epoch) is before 1990-01-01 "
    "(RLSIZER_EARLIEST_EVENT_TIME): it looks like milliseconds since the epoch in a timestamp-micros field "
    "(JavaScript's Date.now() is milliseconds): multiply by 1000"
)
SECONDS = datetime(1970, 1, 1, 0, 28, 59, 141000, tzinfo=UTC)  # 2025-02-09 in seconds
SECONDS_TEXT = (
    "1970-01-01T00:28:59.141000+00:00 (1739141000 microseconds since the epoch) is before 1990-01-01 "
    "(RLSIZER_EARLIEST_EVENT_TIME): it looks like seconds since the epoch in a timestamp-micros field: "
    "multiply by 1000000"
)
JUST_BEFORE = datetime(1989, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
JUST_BEFORE_TEXT = (
    "1989-12-31T23:59:59.999999+00:00 (631151999999999 microseconds since the epoch) is before "
    "1990-01-01 (RLSIZER_EARLIEST_EVENT_TIME), not a plausible time for an event: timestamps are "
    "microseconds since 1970-01-01 UTC (Avro timestamp-micros)"
)
STOP_BUY = "(on the wrong side its risk, hence its R, means nothing)"

# (event type, the rule: a field's name or a cross-field rule's, the values changed, the message).
# ``SCALAR_ONLY`` cases hold values Avro cannot carry (a symbol outside the enum, a naive time): no column case.
DECLARED: list[tuple[type[Event], str, dict[str, Any], str]] = [
    *((t, "event_id", {"event_id": ""}, "event_id must be a non-empty string, got ''") for t in EVENT_TYPES),
    *((t, "ts_event", {"ts_event": MS}, f"ts_event {MS_TEXT}") for t in EVENT_TYPES),
    *((t, "ts_init", {"ts_init": SECONDS}, f"ts_init {SECONDS_TEXT}") for t in EVENT_TYPES),
    (BarClosed, "ts_event", {"ts_event": JUST_BEFORE}, f"ts_event {JUST_BEFORE_TEXT}"),
    (BarClosed, "event_id", {"event_id": "\u2003"}, "event_id must be a non-empty string, got '\\u2003'"),
    (BarClosed, "symbol", {"symbol": "   "}, "symbol must be a non-empty string, got '   '"),
    (BarClosed, "interval", {"interval": ""}, "interval must be a non-empty string, got ''"),
    (BarClosed, "open", {"open": math.nan}, "open must be a finite number > 0, got nan"),
    (BarClosed, "high", {"high": 0.0}, "high must be a finite number > 0, got 0.0"),
    (BarClosed, "low", {"low": -1.0}, "low must be a finite number > 0, got -1.0"),
    (BarClosed, "close", {"close": math.inf}, "close must be a finite number > 0, got inf"),
    (BarClosed, "volume", {"volume": -1.0}, "volume must be a finite number >= 0, got -1.0"),
    (BarClosed, "bid", {"bid": 0.0}, "bid must be a finite number > 0, got 0.0"),
    (BarClosed, "ask", {"ask": math.nan}, "ask must be a finite number > 0, got nan"),
    (BarClosed, "bid_size", {"bid_size": -0.5}, "bid_size must be a finite number >= 0, got -0.5"),
    (BarClosed, "ask_size", {"ask_size": math.inf}, "ask_size must be a finite number >= 0, got inf"),
    (BarClosed, "bar range", {"high": 100.5}, "bar is inconsistent: high=100.5 low=99.0 open=100.0 close=101.0"),
    (BarClosed, "bar range", {"low": 100.5}, "bar is inconsistent: high=102.0 low=100.5 open=100.0 close=101.0"),
    (
        BarClosed,
        "bar range",
        {"high": 98.0, "low": 98.5},
        "bar is inconsistent: high=98.0 low=98.5 open=100.0 close=101.0",
    ),
    (BarClosed, "quote not crossed", {"bid": 101.0, "ask": 100.0}, "crossed quote: bid 101.0 > ask 100.0"),
    (SignalRaised, "signal_id", {"signal_id": "\t"}, "signal_id must be a non-empty string, got '\\t'"),
    (SignalRaised, "strategy_id", {"strategy_id": ""}, "strategy_id must be a non-empty string, got ''"),
    (SignalRaised, "symbol", {"symbol": " "}, "symbol must be a non-empty string, got ' '"),
    (SignalRaised, "side", {"side": "LONG"}, "side must be one of BUY, SELL, got 'LONG'"),
    (SignalRaised, "price", {"price": 0.0}, "price must be a finite number > 0, got 0.0"),
    (SignalRaised, "atr", {"atr": -0.1}, "atr must be a finite number >= 0, got -0.1"),
    (SignalRaised, "score", {"score": math.nan}, "score must be a finite number, got nan"),
    (SignalRaised, "q_score", {"q_score": 1.5}, "q_score must be a number in [0, 1], got 1.5"),
    (SignalRaised, "q_score", {"q_score": -0.01}, "q_score must be a number in [0, 1], got -0.01"),
    (SignalRaised, "base_qty", {"base_qty": math.inf}, "base_qty must be a finite number > 0, got inf"),
    (SignalRaised, "stop_price", {"stop_price": -2.0}, "stop_price must be a finite number > 0, got -2.0"),
    (SignalRaised, "target_price", {"target_price": math.nan}, "target_price must be a finite number > 0, got nan"),
    (
        SignalRaised,
        "stop and target sides",
        {"stop_price": 100.0},
        f"stop_price 100.0 is at or above price 100.0 for a BUY: a BUY's stop must be below its price {STOP_BUY}",
    ),
    (
        SignalRaised,
        "stop and target sides",
        {"target_price": 99.5},
        "target_price 99.5 is at or below price 100.0 for a BUY: a BUY's target must be above its price",
    ),
    (
        SignalRaised,
        "stop and target sides",
        {"side": "SELL", "stop_price": 99.0, "target_price": None},
        f"stop_price 99.0 is at or below price 100.0 for a SELL: a SELL's stop must be above its price {STOP_BUY}",
    ),
    (
        SignalRaised,
        "stop and target sides",
        {"side": "SELL", "stop_price": 101.0, "target_price": 102.0},
        "target_price 102.0 is at or above price 100.0 for a SELL: a SELL's target must be below its price",
    ),
    (FeaturesComputed, "signal_id", {"signal_id": ""}, "signal_id must be a non-empty string, got ''"),
    (
        FeaturesComputed,
        "features",
        {"features": {"a": 1.0, "rsi": math.nan}},
        "feature rsi must be a finite number, got nan",
    ),
    (FeaturesComputed, "features", {"features": {"a": -math.inf}}, "feature a must be a finite number, got -inf"),
    (SizeDecided, "signal_id", {"signal_id": " "}, "signal_id must be a non-empty string, got ' '"),
    (SizeDecided, "multiplier", {"multiplier": 2.01}, "multiplier must be in [0.25, 2.0], got 2.01"),
    (SizeDecided, "multiplier", {"multiplier": 0.2}, "multiplier must be in [0.25, 2.0], got 0.2"),
    (SizeDecided, "multiplier", {"multiplier": math.nan}, "multiplier must be a finite number, got nan"),
    (SizeDecided, "qty", {"qty": -0.1}, "qty must be a finite number >= 0, got -0.1"),
    (SizeDecided, "policy", {"policy": "MAYBE"}, "policy must be one of MODEL, RULES, FALLBACK, got 'MAYBE'"),
    (SizeDecided, "latency_us", {"latency_us": -1}, "latency_us must be >= 0, got -1"),
    (OrderFilled, "signal_id", {"signal_id": ""}, "signal_id must be a non-empty string, got ''"),
    (OrderFilled, "order_id", {"order_id": ""}, "order_id must be a non-empty string, got ''"),
    (OrderFilled, "side", {"side": "buy"}, "side must be one of BUY, SELL, got 'buy'"),
    (OrderFilled, "qty", {"qty": 0.0}, "qty must be a finite number > 0, got 0.0"),
    (OrderFilled, "price", {"price": -math.inf}, "price must be a finite number > 0, got -inf"),
    (OrderFilled, "fee", {"fee": -0.01}, "fee must be a finite number >= 0, got -0.01"),
    (OrderFilled, "leg", {"leg": "MID"}, "leg must be one of ENTRY, EXIT, got 'MID'"),
    (TradeClosed, "side", {"side": "SHORT"}, "side must be one of BUY, SELL, got 'SHORT'"),
    (TradeClosed, "qty", {"qty": math.nan}, "qty must be a finite number > 0, got nan"),
    (TradeClosed, "entry_price", {"entry_price": 0.0}, "entry_price must be a finite number > 0, got 0.0"),
    (TradeClosed, "exit_price", {"exit_price": -1.0}, "exit_price must be a finite number > 0, got -1.0"),
    (TradeClosed, "entry_ts", {"entry_ts": MS}, f"entry_ts {MS_TEXT}"),
    (TradeClosed, "exit_ts", {"exit_ts": SECONDS}, f"exit_ts {SECONDS_TEXT}"),
    (
        TradeClosed,
        "exit after entry",
        {"exit_ts": T0 - timedelta(microseconds=1)},
        "exit_ts 2024-01-02 14:29:59.999999+00:00 is before entry_ts 2024-01-02 14:30:00+00:00",
    ),
    (TradeClosed, "pnl", {"pnl": math.nan}, "pnl must be a finite number, got nan"),
    (TradeClosed, "fees", {"fees": -1.0}, "fees must be a finite number >= 0, got -1.0"),
    (TradeClosed, "r_multiple", {"r_multiple": math.inf}, "r_multiple must be a finite number, got inf"),
    (TradeClosed, "mae_r", {"mae_r": -math.inf}, "mae_r must be a finite number, got -inf"),
    (TradeClosed, "mfe_r", {"mfe_r": math.nan}, "mfe_r must be a finite number, got nan"),
    (ModelPublished, "model_name", {"model_name": ""}, "model_name must be a non-empty string, got ''"),
    (ModelPublished, "version", {"version": " "}, "version must be a non-empty string, got ' '"),
    (HealthChecked, "status", {"status": "MEH"}, "status must be one of OK, WARN, FAIL, got 'MEH'"),
]
SCALAR_ONLY: list[tuple[type[Event], str, dict[str, Any], str]] = [
    (
        SignalRaised,
        "ts_event",
        {"ts_event": datetime(2024, 1, 2)},
        "ts_event must be a timezone-aware datetime, got datetime.datetime(2024, 1, 2, 0, 0)",
    ),
    (SignalRaised, "price", {"price": "1.0"}, "price must be a finite number > 0, got '1.0'"),
    (FeaturesComputed, "features", {"features": {"a": 10**400}}, f"feature a must be a finite number, got {10**400!r}"),
]
NOT_ON_THE_WIRE: set[str] = {"side", "policy", "leg", "status"}  # Avro enums: a symbol outside one cannot be written


def _case_id(case: tuple[type[Event], str, dict[str, Any], str]) -> str:
    return f"{case[0].__name__}.{case[1]}={'/'.join(map(repr, case[2].values()))}"


def _record(event_type: type[Event], overrides: dict[str, Any]) -> dict[str, Any]:
    return {name: dict(v) if isinstance(v, dict) else v for name, v in (BASE[event_type] | overrides).items()}


def _columns(event_type: type[Event], records: list[dict[str, Any]]) -> dict[str, pa.Array]:
    """The columns a replay checks: the records written by fastavro (no validation) and decoded by ``schemas.columnar``."""
    parsed = fastavro.parse_schema(schema_dict(event_type))
    bodies = []
    for record in records:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, record)
        bodies.append(buf.getvalue())
    decoded = decode_columns(schema_dict(event_type), bodies)
    assert decoded.ok.all(), "every row decodes: the rules, not the decoder, refuse it"
    return decoded.arrays


def _declares(event_type: type[Event], rule: str) -> bool:
    table = event_type.rules
    return any(name == rule for name, _ in table.fields) or any(c.name == rule for c in table.cross)


@pytest.mark.parametrize("case", DECLARED + SCALAR_ONLY, ids=_case_id)
def test_each_rule_refuses_with_its_message(case: tuple[type[Event], str, dict[str, Any], str]) -> None:
    event_type, rule, overrides, message = case
    assert _declares(event_type, rule), f"{event_type.__name__} declares no rule {rule!r}"
    with pytest.raises(InvalidEvent) as caught:
        event_type(**(BASE[event_type] | overrides))
    assert str(caught.value) == message


@pytest.mark.parametrize("case", [c for c in DECLARED if not NOT_ON_THE_WIRE & set(c[2])], ids=_case_id)
def test_each_rule_refuses_in_columns(case: tuple[type[Event], str, dict[str, Any], str]) -> None:
    """Between two usual rows, the row breaking the rule is not surely valid (the decoder then asks the dataclass)."""
    event_type, _, overrides, _ = case
    good = _record(event_type, {})
    columns = _columns(event_type, [good, _record(event_type, overrides), good])
    assert surely_valid(event_type, columns).tolist() == [True, False, True]


def test_every_declared_rule_has_a_case() -> None:
    """Each rule of each event has a case in DECLARED: its scalar case and (unless an enum's) its column case."""
    declared = {(t, name) for t in EVENT_TYPES for name, _ in t.rules.fields} | {
        (t, c.name) for t in EVENT_TYPES for c in t.rules.cross
    }
    assert declared - {(t, rule) for t, rule, _, _ in DECLARED} == set()


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.__name__)
def test_usual_values_pass_both_paths_without_the_field_by_field_check(
    event_type: type[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_called(event: Any) -> None:
        raise AssertionError(f"the fast path sent usual values of {type(event).__name__} to the field-by-field check")

    usual = [{}, *USUAL_EDGES.get(event_type, [])]
    monkeypatch.setattr(rules, "_check_event", not_called)
    for changes in usual:
        values = BASE[event_type] | changes
        event = event_type(**values)
        assert all(getattr(event, n) is values[n] for n in field_names(event_type) if not isinstance(values[n], dict))
    monkeypatch.undo()
    columns = _columns(event_type, [_record(event_type, changes) for changes in usual])
    assert surely_valid(event_type, columns).all()


USUAL_EDGES: dict[type[Event], list[dict[str, Any]]] = {  # usual values at the edges of their rules
    BarClosed: [
        dict(open=99.0, high=99.0, low=99.0, close=99.0, volume=0.0, bid=None, ask=None, bid_size=None, ask_size=None),
        dict(bid=100.0, ask=100.0),
        dict(ts_event=datetime(1990, 1, 1, tzinfo=UTC)),
    ],
    SignalRaised: [
        dict(atr=0.0, score=-1e300, q_score=0.0, stop_price=None, target_price=None),
        dict(q_score=1.0),
        dict(side="SELL", stop_price=101.0, target_price=50.0),
        dict(symbol=" x "),
    ],
    FeaturesComputed: [dict(features={}), dict(features={"a": -1e308, "b": 1e308})],
    SizeDecided: [dict(multiplier=MULTIPLIER_MIN, latency_us=10**6), dict(multiplier=MULTIPLIER_MAX, policy="MODEL")],
    OrderFilled: [dict(side="BUY", leg="ENTRY", exit_reason=None)],
    TradeClosed: [dict(exit_ts=T0 + timedelta(days=1), mae_r=0.0)],
}


def test_an_event_breaking_several_rules_is_refused_for_the_first_in_field_order() -> None:
    """Field order, each cross-field rule right after the last field it reads."""
    with pytest.raises(InvalidEvent, match=r"^bar is inconsistent"):  # after close, before volume
        BarClosed(**(BASE[BarClosed] | {"high": 98.0, "volume": -1.0}))
    with pytest.raises(InvalidEvent, match=r"^crossed quote"):  # after ask, before bid_size
        BarClosed(**(BASE[BarClosed] | {"bid": 101.0, "ask": 100.0, "bid_size": -1.0}))
    with pytest.raises(InvalidEvent, match=r"^fees must"):  # fees comes before r_multiple
        TradeClosed(**(BASE[TradeClosed] | {"fees": -1.0, "r_multiple": math.nan}))
    with pytest.raises(InvalidEvent, match=r"^event_id must"):
        SignalRaised(**(BASE[SignalRaised] | {"event_id": "", "price": math.nan}))


def test_ints_and_subclasses_leave_the_fast_path_and_the_check_accepts_them() -> None:
    """Not sure is not wrong: an int where a float is usual is checked field by field, and is valid."""
    bar = BarClosed(
        **(BASE[BarClosed] | {"open": 100, "high": 102, "low": 99, "close": 101, "volume": 0, "bid": None, "ask": None})
    )
    assert bar.open == 100 and type(bar.open) is int
    assert SizeDecided(**(BASE[SizeDecided] | {"multiplier": 2, "latency_us": True})).multiplier == 2
    assert (
        FeaturesComputed(**(BASE[FeaturesComputed] | {"features": {"a": np.float64(1.5), "b": True}})).features["a"]
        == 1.5
    )


def test_maps_are_frozen_copies() -> None:
    features = {"a": 1.0}
    event = FeaturesComputed(**(BASE[FeaturesComputed] | {"features": features}))
    features["a"] = 2.0
    assert event.features["a"] == 1.0
    with pytest.raises(TypeError):
        event.features["b"] = 1.0  # type: ignore[index]
    assert FeaturesComputed(**(BASE[FeaturesComputed] | {"features": event.features})).features is event.features


# --- the vocabulary: each form of each rule against its check ---------------------------------------


class Text(str):
    pass


class Stamp(datetime):
    pass


_numbers = (
    st.floats()
    | st.integers(-(2**1100), 2**1100)
    | st.booleans()
    | st.floats().map(np.float64)
    | st.sampled_from([0.0, -0.0, 1.0, 0.25, 2.0, 2.0000000000000004, 0.24999999999999997, 1.0000000000000002, 5e-324])
)
_texts = (
    st.text(max_size=4)
    | st.text(max_size=3).map(Text)
    | st.sampled_from(["", " ", "\u00a0", "\u2003", "\x85", "BUY", "SELL", " BUY"])
)
_times = (
    st.datetimes(timezones=st.just(UTC) | st.just(timezone(timedelta(hours=-3))))
    | st.datetimes()
    | st.datetimes(min_value=datetime(1971, 1, 1), timezones=st.just(UTC)).map(
        lambda d: Stamp.fromtimestamp(d.timestamp(), UTC)
    )
    | st.sampled_from([MS, SECONDS, JUST_BEFORE, datetime(1990, 1, 1, tzinfo=UTC)])
)
_maps = st.dictionaries(st.text(max_size=2), _numbers, max_size=4) | st.dictionaries(
    st.text(max_size=2), _numbers, max_size=4
).map(MappingProxyType)
ANYTHING = _numbers | _texts | _times | _maps | st.none() | st.binary(max_size=2)

VOCABULARY: dict[str, Rule] = {
    "non-empty": NON_EMPTY[RULE],
    "plausible time": PLAUSIBLE_TIME[RULE],
    "positive": POSITIVE[RULE],
    "non-negative": NON_NEGATIVE[RULE],
    "finite": FINITE[RULE],
    "unit interval": UNIT_INTERVAL[RULE],
    "in range": in_range(MULTIPLIER_MIN, MULTIPLIER_MAX)[RULE],
    "one of": SignalRaised.rules.rule("side"),
    "count": COUNT[RULE],
    "finite values": FINITE_VALUES[RULE],
    "optional positive": optional(POSITIVE)[RULE],
}


def _usual(rule: Rule, value: Any) -> bool:
    consts: dict[str, Any] = {}

    def const(v: Any) -> str:
        consts[f"_c{len(consts)}"] = v
        return f"_c{len(consts) - 1}"

    expression = rule.usual("v", const)
    return bool(eval(expression, vars(rules), {"v": value, **consts}))


def _accepts(rule: Rule, value: Any) -> bool:
    try:
        rule.check("x", value)
    except InvalidEvent:
        return False
    return True


@pytest.mark.parametrize("name", sorted(VOCABULARY))
@settings(max_examples=400, deadline=None)
@given(value=ANYTHING)
def test_the_fast_form_of_each_rule_accepts_only_what_its_check_accepts(name: str, value: Any) -> None:
    rule = VOCABULARY[name]
    if _usual(rule, value):  # it never raises, whatever the value
        assert _accepts(rule, value), (name, value)


# A rule's usual values (the fast form takes them), and values it refuses with its message.
USUAL_AND_REFUSED: dict[str, tuple[list[Any], list[tuple[Any, str]]]] = {
    "non-empty": (
        ["x", " x ", "sig-1"],
        [
            ("", "x must be a non-empty string, got ''"),
            ("\u2003", "x must be a non-empty string, got '\\u2003'"),
            (None, "x must be a non-empty string, got None"),
        ],
    ),
    "plausible time": (
        [T0, datetime(1990, 1, 1, tzinfo=UTC)],
        [(MS, f"x {MS_TEXT}"), (SECONDS, f"x {SECONDS_TEXT}"), (JUST_BEFORE, f"x {JUST_BEFORE_TEXT}")],
    ),
    "positive": (
        [5e-324, 1.0, 1e308],
        [
            (0.0, "x must be a finite number > 0, got 0.0"),
            (-1.0, "x must be a finite number > 0, got -1.0"),
            (math.inf, "x must be a finite number > 0, got inf"),
            (math.nan, "x must be a finite number > 0, got nan"),
        ],
    ),
    "non-negative": (
        [0.0, 1.0],
        [
            (-5e-324, "x must be a finite number >= 0, got -5e-324"),
            (math.inf, "x must be a finite number >= 0, got inf"),
            (math.nan, "x must be a finite number >= 0, got nan"),
        ],
    ),
    "finite": (
        [-1e308, 0.0, 1e308],
        [
            (math.inf, "x must be a finite number, got inf"),
            (-math.inf, "x must be a finite number, got -inf"),
            (math.nan, "x must be a finite number, got nan"),
        ],
    ),
    "unit interval": (
        [0.0, 0.5, 1.0],
        [
            (1.0000000000000002, "x must be a number in [0, 1], got 1.0000000000000002"),
            (-0.01, "x must be a number in [0, 1], got -0.01"),
            (math.nan, "x must be a number in [0, 1], got nan"),
        ],
    ),
    "in range": (
        [0.25, 1.0, 2.0],
        [
            (0.24999999999999997, "x must be in [0.25, 2.0], got 0.24999999999999997"),
            (2.0000000000000004, "x must be in [0.25, 2.0], got 2.0000000000000004"),
            (math.inf, "x must be a finite number, got inf"),
        ],
    ),
    "one of": (
        list(SIDES),
        [("buy", "x must be one of BUY, SELL, got 'buy'"), ("", "x must be one of BUY, SELL, got ''")],
    ),
    "count": ([0, 7], [(-1, "x must be >= 0, got -1")]),
    "finite values": (
        [{}, {"a": 1.0, "b": -2.5}],
        [
            ({"a": 1.0, "b": math.nan}, "feature b must be a finite number, got nan"),
            ({"a": math.inf}, "feature a must be a finite number, got inf"),
        ],
    ),
    "optional positive": ([None, 1.0], [(0.0, "x must be a finite number > 0, got 0.0")]),
}
ARROW_TYPES: dict[str, pa.DataType] = {
    "non-empty": pa.string(),
    "plausible time": pa.timestamp("us"),
    "one of": pa.string(),
    "count": pa.int64(),
    "finite values": pa.map_(pa.string(), pa.float64()),
}


def _column(name: str, values: list[Any]) -> pa.Array:
    arrow_type = ARROW_TYPES.get(name, pa.float64())
    if name == "plausible time":
        values = [v.astimezone(UTC).replace(tzinfo=None) for v in values]
    if name == "finite values":
        values = [list(v.items()) for v in values]
    return pa.array(values, arrow_type)


@pytest.mark.parametrize("name", sorted(VOCABULARY))
def test_each_rule_takes_its_usual_values_on_every_path_and_refuses_its_bad_ones_with_its_message(name: str) -> None:
    rule = VOCABULARY[name]
    usual, refused = USUAL_AND_REFUSED[name]
    assert [_usual(rule, v) for v in usual] == [True] * len(usual)
    for value in usual:
        rule.check("x", value)
    for value, message in refused:
        assert not _usual(rule, value)
        with pytest.raises(InvalidEvent) as caught:
            rule.check("x", value)
        assert str(caught.value) == message
    on_the_wire = [v for v, _ in refused if v is not None]
    column = _column(name, [*usual, *on_the_wire])
    assert rule.column({"x": column}, "x").tolist() == [True] * len(usual) + [False] * len(on_the_wire)


_COLUMN_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "non-empty": st.none() | st.text(max_size=4) | st.sampled_from(["", " ", "\u2003", "\x85", "\t"]),
    "plausible time": st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda d: d.replace(tzinfo=UTC)
    )
    | st.sampled_from([MS, SECONDS, JUST_BEFORE, datetime(1990, 1, 1, tzinfo=UTC)]),
    "one of": st.none() | st.sampled_from(["BUY", "SELL", "buy", "", "BUY "]),
    "count": st.integers(-(2**63), 2**63 - 1),
    "finite values": st.dictionaries(st.text(max_size=2), st.floats(), max_size=4),
}


@pytest.mark.parametrize("name", sorted(VOCABULARY))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_the_column_form_of_each_rule_accepts_only_what_its_check_accepts(name: str, data: st.DataObject) -> None:
    rule = VOCABULARY[name]
    values = data.draw(st.lists(_COLUMN_VALUES.get(name, st.none() | st.floats()), max_size=12))
    if name not in ("optional positive", "non-empty", "one of"):
        values = [v for v in values if v is not None]
    ok = rule.column({"x": _column(name, values)}, "x").tolist()
    for value, surely in zip(values, ok, strict=True):
        if surely:
            assert _accepts(rule, value), (name, value)


CROSS: dict[str, CrossRule] = {
    c.name: c for c in (BAR_RANGE, QUOTE_NOT_CROSSED, EXIT_AFTER_ENTRY, STOP_AND_TARGET_SIDES)
}
_cross_floats = st.floats(min_value=1.0, max_value=4.0) | st.sampled_from([1.0, 2.0, 3.0])
_CROSS_VALUES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "bar range": st.fixed_dictionaries({n: _cross_floats for n in ("open", "high", "low", "close")}),
    "quote not crossed": st.fixed_dictionaries({n: st.none() | _cross_floats for n in ("bid", "ask")}),
    "exit after entry": st.fixed_dictionaries(
        {
            n: st.sampled_from([T0, T0 + timedelta(microseconds=1), T0 - timedelta(days=1)])
            for n in ("entry_ts", "exit_ts")
        }
    ),
    "stop and target sides": st.fixed_dictionaries(
        {
            "side": st.sampled_from(SIDES),
            "price": st.sampled_from([2.0]),
            "stop_price": st.none() | _cross_floats,
            "target_price": st.none() | _cross_floats,
        }
    ),
}


def _cross_columns(values: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, pa.Array]:
    def array(name: str) -> pa.Array:
        column = [v[name] for v in values]
        if name.endswith("_ts"):
            return pa.array([c.replace(tzinfo=None) for c in column], pa.timestamp("us"))
        return pa.array(column, pa.string() if name == "side" else pa.float64())

    return {name: array(name) for name in names}


@pytest.mark.parametrize("name", sorted(CROSS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_each_cross_field_rule_in_its_three_forms(name: str, data: st.DataObject) -> None:
    """Whatever the values: the fast form and the column form are true only where the check accepts."""
    cross = CROSS[name]
    rows = data.draw(st.lists(_CROSS_VALUES[name], min_size=1, max_size=8))
    ok = cross.column(_cross_columns(rows, cross.fields)).tolist()
    for row, surely in zip(rows, ok, strict=True):
        try:
            cross.check(*(row[n] for n in cross.fields))
            accepted = True
        except InvalidEvent:
            accepted = False
        assert not surely or accepted, (name, row)
        assert not eval(cross.usual, vars(rules), dict(row)) or accepted, (name, row)
        assert surely == accepted, (name, row)  # on usual values the column form is exact


@given(st.lists(st.one_of(st.none(), st.text(max_size=6)), max_size=40), st.integers(0, 5))
@settings(max_examples=300, deadline=None)
def test_the_non_empty_column_form_reads_first_bytes_as_the_regex_would(values: list[str | None], cut: int) -> None:
    """It reads the first byte of each string and runs the regex only where that does not decide."""
    for strings in (
        pa.array(values, pa.string()),
        pa.array(values, pa.string()).slice(min(cut, len(values))),
        pa.array(values, pa.large_string()),
    ):
        expected = pc.fill_null(pc.match_substring_regex(strings, "[!-~]"), False).to_numpy(zero_copy_only=False)
        assert rules._printable(strings).tolist() == expected.tolist()


def test_a_field_rule_is_declared_in_its_metadata_once() -> None:
    """The table is the fields' metadata: nothing else lists a field's rule."""
    for event_type in EVENT_TYPES:
        by_metadata = [f.name for f in fields(event_type) if RULE in f.metadata]
        assert [name for name, _ in event_type.rules.fields] == by_metadata
