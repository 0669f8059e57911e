"""EventCodec.decode_batch: the same outcome per message as decode, whichever path a row takes."""

from __future__ import annotations

import io
import json
import math
import re
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.catalog import schema_dict, schema_text
from schemas.codec import DecodeError, EventCodec, InMemoryRegistry, frame
from schemas.events import (
    BarClosed,
    Event,
    FeaturesComputed,
    HealthChecked,
    ModelPublished,
    OrderFilled,
    SignalRaised,
    SizeDecided,
    TradeClosed,
    field_names,
)
from tests.unit.schemas.factories import T0, make_bar, make_signal


def valid_events() -> list[Event]:
    ts = T0 + timedelta(minutes=3)
    return [
        make_bar(),
        make_bar(event_id="b2", bid=100.5, ask=100.75, bid_size=3.0, ask_size=0.0),
        make_signal(attrs={"tf": "1m", "note": "é"}, stop_price=99.0),
        FeaturesComputed(
            signal_id="sig-1",
            symbol="AAPL",
            strategy_id="S1",
            strategy_type="EmaCross",
            feature_set="fs1",
            features={"rsi": 41.5, "atr_pct": 0.01},
            ts_event=T0,
        ),
        FeaturesComputed(
            signal_id="sig-2",
            symbol="AAPL",
            strategy_id="S1",
            strategy_type="EmaCross",
            feature_set="fs1",
            features={},
            ts_event=T0,
        ),
        SizeDecided(
            signal_id="sig-1",
            symbol="AAPL",
            strategy_id="S1",
            multiplier=2.0,
            qty=0.0,
            policy="FALLBACK",
            reason="r",
            latency_us=0,
            ts_event=T0,
        ),
        OrderFilled(
            signal_id="sig-1",
            order_id="o1",
            symbol="AAPL",
            side="SELL",
            qty=1,
            price=101,
            leg="EXIT",
            exit_reason="stop",
            ts_event=T0,
        ),
        TradeClosed(
            signal_id="sig-1",
            symbol="AAPL",
            strategy_id="S1",
            side="BUY",
            qty=1,
            entry_price=100,
            exit_price=99,
            entry_ts=T0,
            exit_ts=ts,
            pnl=-1,
            r_multiple=-1,
            exit_reason="stop",
            ts_event=ts,
        ),
        HealthChecked(component="worker", check="lag", status="WARN", detail="", action=None, ts_event=T0),
        ModelPublished(
            model_name="m",
            version="v1",
            artifact_uri="s3://a",
            manifest_uri="s3://m",
            sha256="x",
            signature="y",
            feature_set="fs1",
            metrics={"sharpe": 1.2},
            ts_event=T0,
        ),
    ]


def expected_value(event: Event, name: str) -> Any:
    """What the batch columns hold for a decoded event's field (naive UTC timestamps, maps as pairs)."""
    value = getattr(event, name)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    if hasattr(value, "items") and not isinstance(value, (str, bytes)):
        return list(value.items())
    return value


def outcomes(codec: EventCodec, datas: list[bytes]) -> list[Any]:
    """Per message: ('event', type, {field: value}) or ('error', kind, message), from decode_batch."""
    batch = codec.decode_batch(datas)
    out: list[Any] = [None] * len(datas)
    for event_type, (index, columns) in batch.columns.items():
        names = field_names(event_type)
        rows = {name: columns[name].to_pylist() for name in names}
        for r, i in enumerate(index.tolist()):
            assert out[i] is None, f"message {i} decoded twice"
            out[i] = ("event", event_type, {n: rows[n][r] for n in names})
    for i, result in batch.singles:
        assert out[i] is None, f"message {i} decoded twice"
        if isinstance(result, Exception):
            out[i] = ("error", getattr(result, "kind", type(result).__name__), str(result))
        else:
            out[i] = ("event", type(result), {n: expected_value(result, n) for n in field_names(type(result))})
    assert all(o is not None for o in out), "a message was lost"
    return out


def reference(codec: EventCodec, data: bytes) -> Any:
    try:
        event = codec.decode(data)
    except DecodeError as exc:
        return ("error", exc.kind, str(exc))
    return ("event", type(event), {n: expected_value(event, n) for n in field_names(type(event))})


def same_outcome(got: Any, want: Any) -> bool:
    if got[:2] != want[:2]:
        return False
    if got[0] == "error":
        return got[2] == want[2]
    return all(_same(got[2][k], want[2][k]) for k in want[2])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def raw_message(codec: EventCodec, event_type: type[Event], record: dict[str, Any], topic: str = "t") -> bytes:
    """Avro-encode a record WITHOUT building the event (so invalid values reach the wire)."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(json.loads(schema_text(event_type))), record)
    return frame(codec.schema_id(topic, event_type), buf.getvalue())


def record_of(event: Event, **overrides: Any) -> dict[str, Any]:
    record = {n: getattr(event, n) for n in field_names(type(event))}
    record.update({k: dict(v) if hasattr(v, "items") else v for k, v in record.items() if hasattr(v, "items")})
    record.update(overrides)
    return record


def test_valid_events_all_decode_in_columns_with_decode_values() -> None:
    codec = EventCodec(InMemoryRegistry())
    events = valid_events()
    datas = [codec.encode(f"t.{type(e).__name__}", e) for e in events] * 3
    batch = codec.decode_batch(datas)
    assert batch.singles == []  # the fast path took every valid event of our own schemas
    got = outcomes(codec, datas)
    for data, outcome in zip(datas, got, strict=True):
        assert same_outcome(outcome, reference(codec, data)), outcome


def test_columns_hold_exactly_the_listed_rows() -> None:
    codec = EventCodec(InMemoryRegistry())
    bars = [make_bar(event_id=f"b{i}", close=100 + i / 10, high=110) for i in range(5)]
    datas = [codec.encode("bars", b) for b in bars]
    datas.insert(2, b"junk")
    batch = codec.decode_batch(datas)
    index, columns = batch.columns[BarClosed]
    assert index.tolist() == [0, 1, 3, 4, 5]
    assert columns["event_id"].to_pylist() == [b.event_id for b in bars]
    assert columns["close"].to_pylist() == [b.close for b in bars]
    assert [(i, r.kind) for i, r in batch.singles] == [(2, "malformed")]  # type: ignore[union-attr]


INVALID_VALUES: list[tuple[type[Event], Event, dict[str, Any]]] = [
    (BarClosed, make_bar(), {"open": float("nan")}),
    (BarClosed, make_bar(), {"high": 98.0}),
    (BarClosed, make_bar(), {"low": 101.5}),
    (BarClosed, make_bar(), {"volume": -1.0}),
    (BarClosed, make_bar(), {"symbol": "   "}),
    (BarClosed, make_bar(), {"symbol": "\u2003"}),  # unicode whitespace only
    (BarClosed, make_bar(), {"interval": ""}),
    (BarClosed, make_bar(), {"bid": 101.0, "ask": 100.0}),
    (BarClosed, make_bar(), {"bid": 0.0}),
    (BarClosed, make_bar(), {"ask_size": -0.5}),
    (BarClosed, make_bar(), {"event_id": ""}),
    (SignalRaised, make_signal(), {"price": 0.0}),
    (SignalRaised, make_signal(), {"atr": float("inf")}),
    (SignalRaised, make_signal(), {"score": float("nan")}),
    (SignalRaised, make_signal(), {"q_score": 1.5}),
    (SignalRaised, make_signal(), {"q_score": -0.01}),
    (SignalRaised, make_signal(), {"base_qty": -1.0}),
    (SignalRaised, make_signal(), {"stop_price": -2.0}),
    (SignalRaised, make_signal(), {"strategy_id": " "}),
    (FeaturesComputed, valid_events()[3], {"features": {"rsi": 1.0, "bad": float("nan")}}),
    (FeaturesComputed, valid_events()[3], {"signal_id": "\t"}),
    (SizeDecided, valid_events()[5], {"multiplier": 2.0000001}),
    (SizeDecided, valid_events()[5], {"multiplier": 0.2}),
    (SizeDecided, valid_events()[5], {"qty": -0.1}),
    (SizeDecided, valid_events()[5], {"latency_us": -1}),
    (OrderFilled, valid_events()[6], {"order_id": ""}),
    (OrderFilled, valid_events()[6], {"fee": -0.01}),
    (OrderFilled, valid_events()[6], {"price": float("-inf")}),
    (TradeClosed, valid_events()[7], {"exit_ts": T0 - timedelta(microseconds=1)}),
    (TradeClosed, valid_events()[7], {"pnl": float("nan")}),
    (TradeClosed, valid_events()[7], {"fees": -1.0}),
    (ModelPublished, valid_events()[9], {"version": ""}),
    # timestamps that cannot be microseconds of a plausible time: milliseconds, seconds, zero
    (SignalRaised, make_signal(), {"ts_event": datetime(1970, 1, 21, 3, 5, 41, tzinfo=UTC)}),
    (SignalRaised, make_signal(), {"ts_init": datetime(1970, 1, 1, 0, 28, tzinfo=UTC)}),
    (BarClosed, make_bar(), {"ts_event": datetime(1970, 1, 1, tzinfo=UTC)}),
    (BarClosed, make_bar(), {"ts_event": datetime(1989, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)}),
    (OrderFilled, valid_events()[6], {"ts_event": datetime(1970, 1, 21, tzinfo=UTC)}),
    (TradeClosed, valid_events()[7], {"entry_ts": datetime(1970, 1, 21, tzinfo=UTC)}),
    (HealthChecked, valid_events()[8], {"ts_init": datetime(1970, 1, 21, tzinfo=UTC)}),
    # a stop or target on the wrong side of the price (make_signal: a BUY at 101)
    (SignalRaised, make_signal(), {"stop_price": 101.0}),
    (SignalRaised, make_signal(), {"stop_price": 102.0}),
    (SignalRaised, make_signal(), {"target_price": 101.0}),
    (SignalRaised, make_signal(), {"target_price": 99.0}),
    (SignalRaised, make_signal(), {"side": "SELL", "stop_price": 99.0}),
    (SignalRaised, make_signal(), {"side": "SELL", "stop_price": 110.0, "target_price": 101.0}),
    (SignalRaised, make_signal(), {"side": "SELL", "target_price": 104.0}),
]


@pytest.mark.parametrize(("event_type", "base", "overrides"), INVALID_VALUES)
def test_invalid_values_get_the_dataclass_reason(
    event_type: type[Event], base: Event, overrides: dict[str, Any]
) -> None:
    codec = EventCodec(InMemoryRegistry())
    good = codec.encode("t", base)
    bad = raw_message(codec, event_type, record_of(base, **overrides))
    datas = [good, bad, good]
    got = outcomes(codec, datas)
    want = [reference(codec, d) for d in datas]
    assert want[1][0] == "error" and want[1][1] == "invalid_value"
    assert [same_outcome(g, w) for g, w in zip(got, want, strict=True)] == [True, True, True], (got[1], want[1])


def _long(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte, z = z & 0x7F, z >> 7
        out.append(byte | 0x80 if z else byte)
        if not z:
            return bytes(out)


def _string(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return _long(len(raw)) + raw


def _features_body(map_bytes: bytes, *, event_id: bytes = b"e1", ts: int = 1_700_000_000_000_000) -> bytes:
    head = _string(event_id) + _long(ts) + _long(ts)
    return head + b"".join(_string(s) for s in ("sig", "AAPL", "S1", "EmaCross", "fs1")) + map_bytes


def _entries(*pairs: tuple[str, float]) -> bytes:
    return b"".join(_string(k) + struct.pack("<d", v) for k, v in pairs)


HAND_MADE: dict[str, bytes] = {
    "two blocks": _features_body(
        _long(1) + _entries(("a", 1.0)) + _long(2) + _entries(("b", 2.0), ("c", 3.0)) + _long(0)
    ),
    "negative count block": _features_body(
        _long(-2) + _long(len(_entries(("a", 1.0), ("b", 2.0)))) + _entries(("a", 1.0), ("b", 2.0)) + _long(0)
    ),
    "duplicate keys (last wins)": _features_body(_long(3) + _entries(("a", 1.0), ("b", 2.0), ("a", 9.0)) + _long(0)),
    "trailing bytes": _features_body(_long(1) + _entries(("a", 1.0)) + _long(0)) + b"\x07\x07",
    "truncated": _features_body(_long(2) + _entries(("a", 1.0), ("b", 2.0)) + _long(0))[:-9],
    "invalid utf-8 key": _features_body(_long(1) + _string(b"\xff\xfe") + struct.pack("<d", 1.0) + _long(0)),
    "invalid utf-8 id": _features_body(_long(0), event_id=b"\xc3\x28"),
    "over-long varint": _features_body(b"\x80" * 9 + b"\x00"),
    "negative string length": _long(-3) + b"abc",
    "timestamp past year 9999": _features_body(_long(0), ts=253_402_300_800_000_000),
    "earliest timestamp": _features_body(_long(0), ts=-62_135_596_800_000_000),
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_hand_made_bodies_match_decode(name: str) -> None:
    codec = EventCodec(InMemoryRegistry())
    schema_id = codec.schema_id("t", FeaturesComputed)
    good = codec.encode("t", valid_events()[3])
    datas = [good, frame(schema_id, HAND_MADE[name]), good]
    got = outcomes(codec, datas)
    want = [reference(codec, d) for d in datas]
    assert [same_outcome(g, w) for g, w in zip(got, want, strict=True)] == [True, True, True], (got[1], want[1])


def test_bad_frames_and_unknown_schemas_match_decode() -> None:
    codec = EventCodec(InMemoryRegistry())
    good = codec.encode("t", make_bar())
    datas = [b"", b"\x01\x00\x00\x00\x01abc", frame(4242, b"\x02"), good, b"\x00\x00"]
    got = outcomes(codec, datas)
    want = [reference(codec, d) for d in datas]
    assert [g[:2] for g in got] == [w[:2] for w in want]
    assert all(same_outcome(g, w) for g, w in zip(got, want, strict=True))


def test_other_writer_schema_takes_the_exact_path() -> None:
    """A newer producer's schema (an added field with a default) resolves through fastavro, one by one."""
    registry = InMemoryRegistry()
    codec = EventCodec(registry)
    newer = schema_dict(BarClosed) | {
        "fields": [*schema_dict(BarClosed)["fields"], {"name": "venue", "type": "string", "default": ""}]
    }
    schema_id = registry.register("t-value", json.dumps(newer))
    record = record_of(make_bar()) | {"venue": "XNAS"}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(newer), record)
    batch = codec.decode_batch([frame(schema_id, buf.getvalue())])
    assert batch.columns == {} and len(batch.singles) == 1
    assert batch.singles[0][1] == make_bar()


FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.25, 2.0, 1e-300, -1e-300, 1e308]),
)
TEXT = st.one_of(st.text(max_size=6), st.sampled_from(["", " ", "\u00a0", "\u2028", "x", "BUY", "é"]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bars=st.lists(
        st.tuples(
            FLOATS, FLOATS, FLOATS, FLOATS, FLOATS, st.one_of(st.none(), FLOATS), st.one_of(st.none(), FLOATS), TEXT
        ),
        min_size=1,
        max_size=8,
    ),
    decisions=st.lists(st.tuples(FLOATS, FLOATS, st.integers(-3, 3), TEXT), max_size=6),
    features=st.lists(st.dictionaries(st.text(max_size=3), FLOATS, max_size=4), max_size=6),
)
def test_generated_values_match_decode(
    bars: list[tuple[Any, ...]], decisions: list[tuple[Any, ...]], features: list[dict[str, float]]
) -> None:
    """Whatever the values, decode_batch accepts what decode accepts and refuses with its reason."""
    codec = EventCodec(InMemoryRegistry())
    bar, decision, feats = make_bar(), valid_events()[5], valid_events()[3]
    datas = [
        raw_message(codec, BarClosed, record_of(bar, open=o, high=h, low=lo, close=c, volume=v, bid=b, ask=a, symbol=s))
        for o, h, lo, c, v, b, a, s in bars
    ]
    datas += [
        raw_message(codec, SizeDecided, record_of(decision, multiplier=m, qty=q, latency_us=lat, signal_id=s))
        for m, q, lat, s in decisions
    ]
    datas += [raw_message(codec, FeaturesComputed, record_of(feats, features=f)) for f in features]
    got = outcomes(codec, datas)
    for data, outcome in zip(datas, got, strict=True):
        want = reference(codec, data)
        assert same_outcome(outcome, want), (outcome, want)


def test_the_earliest_plausible_time_is_configurable_and_both_rules_follow_it() -> None:
    """RLSIZER_EARLIEST_EVENT_TIME (read when schemas.events is imported; set here for this process)."""
    from schemas.events import set_earliest_event_time

    codec = EventCodec(InMemoryRegistry())
    in_1985 = datetime(1985, 6, 1, tzinfo=UTC)
    previous = set_earliest_event_time(datetime(1980, 1, 1, tzinfo=UTC))
    try:
        data = codec.encode("t", make_signal(ts_event=in_1985, ts_init=in_1985))  # valid while the bound is 1980
    finally:
        set_earliest_event_time(previous)
    assert outcomes(codec, [data])[0][:2] == ("error", "invalid_value") == reference(codec, data)[:2]
    assert "is before 1990-01-01" in reference(codec, data)[2] and "not a plausible time" in reference(codec, data)[2]
    previous = set_earliest_event_time(datetime(1980, 1, 1, tzinfo=UTC))
    try:
        assert outcomes(codec, [data])[0][:2] == ("event", SignalRaised) == reference(codec, data)[:2]
    finally:
        set_earliest_event_time(previous)


def test_maps_larger_than_the_columnar_limit_take_the_exact_path() -> None:
    from schemas.columnar import MAX_MAP_ENTRIES

    codec = EventCodec(InMemoryRegistry())
    small, big = (
        valid_events()[3],
        FeaturesComputed(
            signal_id="s",
            symbol="X",
            strategy_id="S1",
            strategy_type="t",
            feature_set="fs1",
            features={f"f{i}": float(i) for i in range(MAX_MAP_ENTRIES + 1)},
            ts_event=T0,
        ),
    )
    datas = [codec.encode("t", small), codec.encode("t", big)]
    batch = codec.decode_batch(datas)
    assert batch.columns[FeaturesComputed][0].tolist() == [0]
    assert [(i, r) for i, r in batch.singles] == [(1, big)]


def test_none_and_short_messages_are_refused_like_decode() -> None:
    codec = EventCodec(InMemoryRegistry())
    good = codec.encode("t", make_bar())
    datas: list[Any] = [None, good, b"\x00\x00\x00", good]
    batch = codec.decode_batch(datas)
    assert batch.columns[BarClosed][0].tolist() == [1, 3]
    assert [(i, getattr(r, "kind", None)) for i, r in batch.singles] == [(0, "malformed"), (2, "malformed")]


def test_maps_shaped_like_another_row_match_decode() -> None:
    """Many feature maps with one shape (the live case, read as one block) among other shapes, hand-made
    bodies sharing the shape's prefix, values that are refused, and rows of a second shape."""
    codec = EventCodec(InMemoryRegistry())
    schema_id = codec.schema_id("t", FeaturesComputed)
    feats = valid_events()[3]
    names = [f"f{j:02d}" for j in range(12)]
    shaped = [{n: float(i * 12 + j) / 7 for j, n in enumerate(names)} for i in range(30)]
    shaped[4]["f03"] = math.nan  # same bytes shape, refused value: the dataclass's reason
    shaped[9]["f11"] = math.inf
    other = [dict(reversed(list(m.items()))) for m in shaped[:5]]  # same names, another order
    datas = [raw_message(codec, FeaturesComputed, record_of(feats, features=m)) for m in shaped[:10] + other]
    datas += [frame(schema_id, body) for body in HAND_MADE.values()]
    datas += [raw_message(codec, FeaturesComputed, record_of(feats, features=m)) for m in shaped[10:]]
    datas.insert(
        3, raw_message(codec, FeaturesComputed, record_of(feats, features=shaped[0]))[:-20]
    )  # cut inside the map
    datas.insert(
        5, raw_message(codec, FeaturesComputed, record_of(feats, features=shaped[1])) + b"\x00"
    )  # trailing byte
    got = outcomes(codec, datas)
    want = [reference(codec, d) for d in datas]
    scrub = lambda o: (*o[:2], re.sub(r" at 0x[0-9a-f]+", "", o[2])) if o[0] == "error" else o  # noqa: E731  (fastavro names a buffer's address)
    assert [same_outcome(scrub(g), scrub(w)) for g, w in zip(got, want, strict=True)] == [True] * len(datas)
    assert sum(1 for w in want if w[0] == "event") == len(shaped) + len(other) - 2 + sum(
        1 for b in HAND_MADE.values() if reference(codec, frame(schema_id, b))[0] == "event"
    )


def test_a_subset_of_joined_bodies_decodes_as_those_bodies_alone() -> None:
    """``decode_columns_at`` reads its rows out of one buffer of the whole batch: other rows' bytes, before and
    after, never leak in, and a body cut short at the very end of the buffer is refused as when decoded alone."""
    from schemas.columnar import Joined, decode_columns, decode_columns_at

    codec = EventCodec(InMemoryRegistry())
    bars = [codec.encode("t", make_bar(event_id=f"b{i}", close=100 + i / 10)) for i in range(4)]
    signal = codec.encode("t", make_signal())
    bodies = [bars[0], signal, bars[1], bars[2][:-3], signal, bars[3][:-1]]
    joined = Joined.of(bodies)
    rows = [0, 2, 3, 5]
    alone = decode_columns(schema_dict(BarClosed), [bodies[i] for i in rows], skip=5)
    subset = decode_columns_at(schema_dict(BarClosed), joined, rows, skip=5)
    assert subset.ok.tolist() == alone.ok.tolist() == [True, True, False, False]
    for name, array in alone.arrays.items():
        good = pa.array(alone.ok)
        assert subset.arrays[name].filter(good).equals(array.filter(good)), name


@pytest.mark.parametrize("key_count", [1, 2, 80])
def test_same_shaped_maps_read_as_one_block_whatever_bytes_follow_them(
    monkeypatch: pytest.MonkeyPatch, key_count: int
) -> None:
    """The shape check compares whole 8-byte words with the values (and the bytes past the map that fill
    its last word: 2, 6 and 5 of them here) masked out. ``features`` is the last field, so those bytes are
    the next message's (a bar: another schema id) or the buffer's padding: every row still matches the
    first row's shape and none takes the per-entry path."""
    from schemas import columnar

    def per_entry(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a same-shaped map took the per-entry path")

    monkeypatch.setattr(columnar, "_map_entries", per_entry)
    codec = EventCodec(InMemoryRegistry())
    names = [f"k{j:02d}" for j in range(key_count)]
    events = [
        FeaturesComputed(
            signal_id=f"s{i}",
            symbol="AAPL",
            strategy_id="S1",
            strategy_type="EmaCross",
            feature_set="fs1",
            features={n: i * 1.5 - j for j, n in enumerate(names)},
            ts_event=T0 + timedelta(microseconds=7**i),
        )
        for i in range(9)
    ]
    datas = [codec.encode("t", m) for e in events for m in (e, make_bar(event_id=f"b-{e.signal_id}"))]
    batch = codec.decode_batch(datas)
    assert not batch.singles
    index, columns = batch.columns[FeaturesComputed]
    assert index.tolist() == list(range(0, len(datas), 2))
    assert columns["features"].to_pylist() == [list(e.features.items()) for e in events]


@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 40)), max_size=30), st.integers(0, 40), st.booleans())
@settings(max_examples=300, deadline=None)
def test_spans_gather_the_bytes_of_each_span_in_order(spans: list[tuple[int, int]], width: int, uniform: bool) -> None:
    """``_Cursor._spans``: spans all of one length are copied as one block, others byte by byte; both give
    every span's bytes end to end, including spans that end at the last byte of the buffer."""
    import numpy as np

    from schemas.columnar import _PAD, Joined, _Cursor

    data = bytes(range(256)) * 2
    cursor = _Cursor(Joined.of([data]), np.arange(1), 0)
    limit = len(cursor.buf) - _PAD
    if uniform:
        spans = [(min(start, limit - width), width) for start, _ in spans]
    spans = [(min(start, limit), min(length, limit - min(start, limit))) for start, length in spans]
    start = np.array([s for s, _ in spans], np.int64)
    length = np.array([n for _, n in spans], np.int64)
    offsets = np.zeros(len(spans) + 1, np.int64)
    np.cumsum(length, out=offsets[1:])
    got = cursor._spans(start, length, offsets)
    assert got.dtype == np.uint8 and bytes(got) == b"".join(data[s : s + n] for s, n in spans)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (1_733_580_000_000, "looks like milliseconds"),  # JavaScript's Date.now() on 2024-12-07, read as microseconds
        (1_733_580_000, "looks like seconds"),
        (0, "not a plausible time"),
    ],
)
def test_a_timestamp_in_the_wrong_unit_is_invalid_with_a_reason_naming_the_unit(value: int, words: str) -> None:
    codec = EventCodec(InMemoryRegistry())
    data = raw_message(codec, SignalRaised, record_of(make_signal(), ts_event=value))
    with pytest.raises(DecodeError) as caught:
        codec.decode(data)
    assert (
        caught.value.kind == "invalid_value" and words in str(caught.value) and "ts_event 1970-01-" in str(caught.value)
    )
    assert outcomes(codec, [data])[0] == reference(codec, data)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"stop_price": 101.0}, "stop_price 101.0 is at or above price 101.0 for a BUY"),
        ({"target_price": 100.0}, "target_price 100.0 is at or below price 101.0 for a BUY"),
        ({"side": "SELL", "stop_price": 100.0}, "stop_price 100.0 is at or below price 101.0 for a SELL"),
        ({"side": "SELL", "target_price": 102.0}, "target_price 102.0 is at or above price 101.0 for a SELL"),
    ],
)
def test_a_stop_or_target_on_the_wrong_side_is_invalid_with_a_reason(overrides: dict[str, Any], words: str) -> None:
    codec = EventCodec(InMemoryRegistry())
    with pytest.raises(DecodeError) as caught:
        codec.decode(raw_message(codec, SignalRaised, record_of(make_signal(), **overrides)))
    assert caught.value.kind == "invalid_value" and words in str(caught.value)
    sides = (
        {"side": "SELL", "stop_price": 102.0, "target_price": 100.0}
        if "side" in overrides
        else {"stop_price": 100.0, "target_price": 102.0}
    )
    assert (
        codec.decode(raw_message(codec, SignalRaised, record_of(make_signal(), **sides))).stop_price
        == sides["stop_price"]
    )
