"""Codec: exact Confluent-framed bytes, round trips for every event, clear errors."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.catalog import schema_text
from schemas.codec import DecodeError, EventCodec, InMemoryRegistry, frame, unframe
from schemas.events import (
    BarClosed,
    EventRejected,
    FeaturesComputed,
    HealthChecked,
    ModelPublished,
    OrderFilled,
    SignalRaised,
    SizeDecided,
    TradeClosed,
)
from tests.unit.schemas.factories import T0, make_bar, make_signal

# --- an independent Avro binary encoder (the spec, not fastavro) for exact-bytes checks ---


def _long(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte = z & 0x7F
        z >>= 7
        if z:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _string(s: str) -> bytes:
    raw = s.encode()
    return _long(len(raw)) + raw


def _double(x: float) -> bytes:
    return struct.pack("<d", x)


def _micros(ts: datetime) -> int:
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_bar_exact_bytes():
    bar = make_bar(bid=100.5, ask=100.75)
    codec = EventCodec(InMemoryRegistry())
    expected_body = (
        _string(bar.event_id)
        + _long(_micros(T0))
        + _long(_micros(T0))
        + _string("AAPL")
        + _string("1d")
        + b"".join(_double(x) for x in (100.0, 102.0, 99.0, 101.0, 12345.0))
        + _long(1)
        + _double(100.5)  # bid: union branch 1 (double)
        + _long(1)
        + _double(100.75)  # ask
        + _long(0)  # bid_size: null
        + _long(0)  # ask_size: null
    )
    assert codec.encode("rlsizer.bars", bar) == b"\x00" + struct.pack(">I", 1) + expected_body


def test_framing_header():
    assert frame(258, b"body") == b"\x00\x00\x00\x01\x02body"
    assert unframe(b"\x00\x00\x00\x01\x02body") == (258, b"body")


@pytest.mark.parametrize(
    ("data", "kind", "match"),
    [
        (b"", "malformed", "too short"),
        (b"\x01\x00\x00\x00\x01abc", "malformed", "magic byte 1"),
        (b"\x00\x00\x00\x00\x63abc", "unknown_schema", "schema id 99"),
    ],
)
def test_decode_errors_have_kinds(data, kind, match):
    codec = EventCodec(InMemoryRegistry())
    with pytest.raises(DecodeError, match=match) as info:
        codec.decode(data)
    assert info.value.kind == kind


def test_truncated_body_is_malformed():
    codec = EventCodec(InMemoryRegistry())
    data = codec.encode("rlsizer.bars", make_bar())
    with pytest.raises(DecodeError) as info:
        codec.decode(data[:20])
    assert info.value.kind == "malformed"


def test_a_malformed_body_gets_the_same_reason_every_time():
    """fastavro's message names the stream it read by its address; the dead-letter reason must not (it varied
    between two decodes of the same bytes, and a batch decode then disagreed with a single one)."""
    codec = EventCodec(InMemoryRegistry())
    data = codec.encode("rlsizer.bars", make_bar())
    reasons = []
    for n in range(6, len(data)):  # the body cut at every length
        twice = set()
        for _ in range(2):
            with pytest.raises(DecodeError) as info:
                codec.decode(bytes(data[:n]))
            twice.add(info.value.reason)
        assert len(twice) == 1 and "object at 0x" not in twice.pop(), (n, info.value.reason)
        reasons.append(info.value.reason)
    assert "Avro body does not match schema id 1: cannot read double from the body" in reasons


def test_invalid_value_on_the_wire_is_reported():
    """Another producer can write NaN prices; decoding names the field."""
    import io

    import fastavro

    registry = InMemoryRegistry()
    schema_id = registry.register("rlsizer.bars-value", schema_text(BarClosed))
    record = {
        f: getattr(make_bar(), f)
        for f in (
            "event_id",
            "ts_event",
            "ts_init",
            "symbol",
            "interval",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "bid",
            "ask",
            "bid_size",
            "ask_size",
        )
    }
    record["close"] = float("nan")
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(json.loads(schema_text(BarClosed))), record)
    with pytest.raises(DecodeError, match="close must be a finite number") as info:
        EventCodec(registry).decode(frame(schema_id, buf.getvalue()))
    assert info.value.kind == "invalid_value"


def test_foreign_schema_is_wrong_schema():
    registry = InMemoryRegistry()
    schema_id = registry.register(
        "x-value",
        json.dumps({"type": "record", "name": "Other", "namespace": "acme", "fields": [{"name": "a", "type": "int"}]}),
    )
    with pytest.raises(DecodeError) as info:
        EventCodec(registry).decode(frame(schema_id, b"\x02"))
    assert info.value.kind == "wrong_schema"


def test_newer_writer_schema_with_extra_field_still_decodes():
    """BACKWARD evolution: a producer on v2 (extra field with default) is readable by us."""
    import io

    import fastavro

    v2 = json.loads(schema_text(SignalRaised))
    v2["fields"].append({"name": "venue", "type": "string", "default": ""})
    registry = InMemoryRegistry()
    schema_id = registry.register("rlsizer.signals-value", json.dumps(v2))
    signal = make_signal()
    record = {name: getattr(signal, name) for name in (f["name"] for f in v2["fields"][:-1])}
    record["attrs"] = dict(record["attrs"])
    record["venue"] = "XNAS"
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(v2), record)
    assert EventCodec(registry).decode(frame(schema_id, buf.getvalue())) == signal


def test_a_writer_schema_with_plain_long_timestamps_decodes_to_the_same_event():
    """A client in another language may declare ``ts_event`` as a plain ``long`` (no logicalType):
    the registry calls that compatible, and it is the same microseconds since the epoch."""
    import io

    import fastavro

    plain = json.loads(schema_text(TradeClosed))
    stamps = [f["name"] for f in plain["fields"] if isinstance(f["type"], dict) and f["type"].get("logicalType")]
    assert {"ts_event", "ts_init", "entry_ts", "exit_ts"} <= set(stamps)
    for f in plain["fields"]:
        if f["name"] in stamps:
            f["type"] = "long"
    registry = InMemoryRegistry()
    schema_id = registry.register("rlsizer.outcomes-value", json.dumps(plain))
    trade = TradeClosed(
        ts_event=T0 + timedelta(hours=2),
        signal_id="s",
        symbol="AAPL",
        strategy_id="S1",
        side="BUY",
        qty=1.0,
        entry_price=100.0,
        exit_price=101.0,
        entry_ts=T0,
        exit_ts=T0 + timedelta(hours=2),
        pnl=1.0,
        fees=0.0,
        r_multiple=0.5,
        mae_r=-0.1,
        mfe_r=0.6,
        exit_reason="target",
    )
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    record = {f["name"]: getattr(trade, f["name"]) for f in plain["fields"]}
    for name in stamps:
        record[name] = (record[name] - epoch) // timedelta(microseconds=1)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(plain), record)
    assert EventCodec(registry).decode(frame(schema_id, buf.getvalue())) == trade
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(plain), record | {"ts_event": 2**62})
    with pytest.raises(DecodeError) as info:
        EventCodec(registry).decode(frame(schema_id, buf.getvalue()))
    assert info.value.kind == "invalid_value" and "ts_event" in info.value.reason


# --- round trips for every event type, with hypothesis -----------------------------------

timestamps = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
positive = st.floats(min_value=1e-9, max_value=1e12, allow_nan=False)
text = st.text(min_size=1, max_size=20).filter(str.strip)
side = st.sampled_from(["BUY", "SELL"])


@st.composite
def bars(draw):
    low = draw(positive)
    high = low + draw(st.floats(min_value=0, max_value=1e6))
    open_ = draw(st.floats(min_value=low, max_value=high))
    close = draw(st.floats(min_value=low, max_value=high))
    return BarClosed(
        ts_event=draw(timestamps),
        ts_init=draw(timestamps),
        symbol=draw(text),
        interval="1h",
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=draw(st.floats(min_value=0, max_value=1e12)),
        bid=draw(st.none() | st.just(low)),
        ask=draw(st.none() | st.just(high)),
    )


@st.composite
def any_event(draw):
    ts = draw(timestamps)
    kind = draw(st.integers(0, 8))
    if kind == 0:
        return draw(bars())
    if kind == 1:
        price, buy = draw(positive), draw(side) == "BUY"
        below = st.floats(min_value=0.0, max_value=price, exclude_min=True, exclude_max=True)
        above = st.floats(min_value=price, max_value=2e12, exclude_min=True)
        return SignalRaised(
            ts_event=ts,
            signal_id=draw(text),
            strategy_id=draw(text),
            symbol=draw(text),
            side="BUY" if buy else "SELL",
            price=price,
            atr=draw(st.floats(min_value=0, max_value=1e6)),
            score=draw(finite),
            q_score=draw(st.floats(0.0, 1.0)),
            base_qty=draw(positive),
            stop_price=draw(st.none() | (below if buy else above)),  # on the side against the trade
            target_price=draw(st.none() | (above if buy else below)),
            attrs=draw(st.dictionaries(text, st.text(max_size=5), max_size=3)),
        )
    if kind == 2:
        return FeaturesComputed(
            ts_event=ts,
            signal_id=draw(text),
            symbol="X",
            strategy_id="S1",
            strategy_type="EmaCross",
            feature_set="fs1",
            features=draw(st.dictionaries(text, finite, max_size=8)),
        )
    if kind == 3:
        return SizeDecided(
            ts_event=ts,
            signal_id=draw(text),
            symbol="X",
            strategy_id="S3",
            multiplier=draw(st.floats(min_value=0.25, max_value=2.0)),
            qty=draw(st.floats(min_value=0, max_value=1e9)),
            policy=draw(st.sampled_from(["MODEL", "RULES", "FALLBACK"])),
            reason=draw(st.text(max_size=30)),
            model_version=draw(st.none() | text),
            latency_us=draw(st.integers(0, 2**40)),
        )
    if kind == 4:
        return OrderFilled(
            ts_event=ts,
            signal_id="s",
            order_id=draw(text),
            symbol="X",
            side=draw(side),
            qty=draw(positive),
            price=draw(positive),
            fee=draw(st.floats(min_value=0, max_value=1e6)),
            leg=draw(st.sampled_from(["ENTRY", "EXIT"])),
            exit_reason=draw(st.none() | st.sampled_from(["stop", "target", "time"])),
        )
    if kind == 5:
        exit_ts = ts + timedelta(seconds=draw(st.integers(0, 10**7)))
        return TradeClosed(
            ts_event=exit_ts,
            signal_id="s",
            symbol="X",
            strategy_id="S9",
            side=draw(side),
            qty=draw(positive),
            entry_price=draw(positive),
            exit_price=draw(positive),
            entry_ts=ts,
            exit_ts=exit_ts,
            pnl=draw(finite),
            r_multiple=draw(finite),
            mae_r=draw(finite),
            mfe_r=draw(finite),
            exit_reason="stop",
        )
    if kind == 6:
        return ModelPublished(
            ts_event=ts,
            model_name="cvar-ppo",
            version=draw(text),
            artifact_uri="s3://b/k",
            manifest_uri="s3://b/m",
            sha256="0" * 64,
            signature="ab",
            feature_set="fs1",
            alias=draw(st.none() | st.just("champion")),
            metrics=draw(st.dictionaries(text, finite, max_size=4)),
        )
    if kind == 7:
        return HealthChecked(
            ts_event=ts,
            component="worker",
            check=draw(text),
            status=draw(st.sampled_from(["OK", "WARN", "FAIL"])),
            detail=draw(st.text(max_size=40)),
            action=draw(st.none() | text),
        )
    return EventRejected(
        ts_event=ts,
        source_topic="rlsizer.bars",
        source_partition=draw(st.integers(0, 100)),
        source_offset=draw(st.integers(0, 2**62)),
        raw_key=draw(st.none() | st.binary(max_size=10)),
        raw_value=draw(st.binary(max_size=50)),
        reason="r",
        error_type="malformed",
    )


@settings(max_examples=300, deadline=None)
@given(any_event())
def test_decode_encode_roundtrip(event):
    codec = EventCodec(InMemoryRegistry())
    data = codec.encode("topic", event)
    assert data[0] == 0
    assert codec.decode(data) == event


def test_same_schema_same_id_across_subjects():
    registry = InMemoryRegistry()
    codec = EventCodec(registry)
    a = codec.encode("one", make_bar())
    b = codec.encode("two", make_bar())
    assert a[:5] == b[:5]
    assert codec.schema_id("one", SignalRaised) != codec.schema_id("one", BarClosed)


@settings(max_examples=200, deadline=None)
@given(any_event())
def test_decode_head_reads_the_same_ids_as_decode(event):
    codec = EventCodec(InMemoryRegistry())
    data = codec.encode("topic", event)
    names = ("event_id", "ts_event") + (("signal_id",) if hasattr(event, "signal_id") else ())
    event_type, head = codec.decode_head(data, names)
    assert event_type is type(event)
    assert head == {name: getattr(event, name) for name in names}


def test_decode_head_reads_a_foreign_writer_schema_in_full_and_reports_bad_bytes():
    import io

    import fastavro

    v2 = json.loads(schema_text(SignalRaised))
    v2["fields"].insert(0, {"name": "venue", "type": "string", "default": ""})  # ids no longer at the front
    registry = InMemoryRegistry()
    schema_id = registry.register("rlsizer.signals-value", json.dumps(v2))
    signal = make_signal()
    record = {**{f["name"]: getattr(signal, f["name"]) for f in v2["fields"][1:]}, "venue": "XNAS"}
    record["attrs"] = dict(record["attrs"])
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(v2), record)
    codec = EventCodec(registry)
    assert codec.decode_head(frame(schema_id, buf.getvalue()), ("signal_id", "strategy_id")) == (
        SignalRaised,
        {"signal_id": signal.signal_id, "strategy_id": signal.strategy_id},
    )
    ours = codec.encode("rlsizer.signals", signal)
    with pytest.raises(DecodeError):
        codec.decode_head(ours[:8], ("signal_id",))  # cut inside the event id
    with pytest.raises(DecodeError, match="no field 'price_x'"):
        codec.decode_head(ours, ("price_x",))
