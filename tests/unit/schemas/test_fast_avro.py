"""Compiled Avro encoder and head reader: fastavro's bytes and fastavro's values, or a refusal (then fastavro decides)."""

from __future__ import annotations

import io
import math
import struct
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType, SimpleNamespace
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas.codec as codec_module
from schemas.avro_kinds import Refused, Unsupported, varint
from schemas.catalog import schema_dict, schema_text
from schemas.codec import DecodeError, EventCodec, InMemoryRegistry, encode_body, frame
from schemas.events import EVENT_TYPES, Event, FeaturesComputed, SignalRaised, SizeDecided, field_names
from schemas.fast_avro import CompiledSchema, compile_schema, compiled, head_decoder
from schemas.fast_avro_decode import _read_varint
from tests.unit.schemas.factories import T0, make_bar, make_signal
from tests.unit.schemas.test_codec import _long, any_event

PARSED = {t: fastavro.parse_schema(schema_dict(t)) for t in EVENT_TYPES}


def fast(event_type: type[Event]) -> CompiledSchema:
    codec = compiled(event_type)
    assert codec is not None, f"{event_type.__name__} is not compiled"
    return codec


def fastavro_bytes(event_type: type[Event], record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, PARSED[event_type], record)
    return buf.getvalue()


def fastavro_record(event_type: type[Event], body: bytes) -> dict[str, Any]:
    return fastavro.schemaless_reader(io.BytesIO(body), PARSED[event_type], None)


def record_of(event: Event) -> dict[str, Any]:
    return codec_module.to_record(field_names(type(event)), event)


def identical(a: Any, b: Any) -> bool:
    """Equal values of the very same types, floats to the bit, dicts in the same order, same tzinfo."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(identical(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, datetime):
        return a == b and a.tzinfo is b.tzinfo
    return bool(a == b)


# --- every schema is compiled: a schema change that would fall back to fastavro is noticed ---


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.__name__)
def test_every_event_schema_is_compiled(event_type: type[Event]) -> None:
    compile_schema(schema_dict(event_type))  # raises Unsupported, with the field, if not
    assert compiled(event_type) is not None


@pytest.mark.parametrize(
    "avro_type",
    [
        "boolean",
        "float",
        {"type": "array", "items": "double"},
        {"type": "map", "values": "long"},
        ["null", "string", "double"],
        ["null", "long"],
        {"type": "long", "logicalType": "timestamp-millis"},
        {"type": "string", "logicalType": "uuid"},
        {"type": "double"},
        {"type": "fixed", "name": "F", "size": 4},
        {"type": "record", "name": "Inner", "fields": []},
        "rlsizer.v1.Side",
    ],
    ids=str,
)
def test_types_not_compiled_are_refused_at_compile_time(avro_type: Any) -> None:
    schema = {
        "type": "record",
        "name": "X",
        "fields": [{"name": "a", "type": "string"}, {"name": "b", "type": avro_type}],
    }
    with pytest.raises(Unsupported, match="field 'b'"):
        compile_schema(schema)


@pytest.mark.parametrize("name", ["from", "a-b", "x'y", "1st"])
def test_field_names_that_are_not_identifiers_are_refused_at_compile_time(name: str) -> None:
    """The generated source names each field: one that is not a plain identifier is left to fastavro."""
    schema = {"type": "record", "name": "X", "fields": [{"name": name, "type": "string"}]}
    with pytest.raises(Unsupported, match="not a Python identifier"):
        compile_schema(schema)


# --- valid events: fastavro's bytes, fastavro's values ---------------------------------------


@settings(max_examples=400, deadline=None)
@given(any_event())
def test_encode_is_fastavro_bytes(event: Event) -> None:
    event_type = type(event)
    assert fast(event_type).encode(event) == fastavro_bytes(event_type, record_of(event))


def _feature_maps() -> st.SearchStrategy[dict[str, float]]:
    names = st.sampled_from(["rsi", "atr_pct", "é", "z" * 70, "", "ret_1", "ret_5"])
    values = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53)
    return st.dictionaries(names, values, max_size=7)


@settings(max_examples=300, deadline=None)
@given(st.lists(_feature_maps(), min_size=1, max_size=6))
def test_maps_of_doubles_with_repeated_and_reordered_key_sets(maps: list[dict[str, float]]) -> None:
    """The key-set shortcut gives fastavro's bytes, whatever came before."""
    for features in maps + maps[::-1]:
        event = FeaturesComputed(
            ts_event=T0,
            signal_id="s",
            symbol="X",
            strategy_id="S1",
            strategy_type="EmaCross",
            feature_set="fs1",
            features=features,
        )
        assert fast(FeaturesComputed).encode(event) == fastavro_bytes(FeaturesComputed, record_of(event))


# --- arbitrary values: either fastavro's bytes or a refusal ----------------------------------

_offsets = st.timedeltas(min_value=-timedelta(hours=23), max_value=timedelta(hours=23)).map(timezone)
_wild_floats = st.floats() | st.integers(-(2**70), 2**70) | st.booleans() | st.sampled_from(["1.5", "nan", "x"])
_wild_ints = st.integers(-(2**65), 2**65) | st.floats(-1e20, 1e20) | st.booleans()
_wild_texts = st.text(max_size=80) | st.binary(max_size=5) | st.integers() | st.none()
_wild_times = (
    st.datetimes(timezones=st.just(UTC) | _offsets)
    | st.datetimes()
    | st.integers(-(2**64), 2**64)
    | st.floats(-1e18, 1e18)
)


def _wild(avro_type: Any) -> st.SearchStrategy[Any]:
    if avro_type == "string":
        return _wild_texts
    if avro_type == "bytes":
        return st.binary(max_size=80) | st.builds(bytearray, st.binary(max_size=3)) | st.text(max_size=3)
    if avro_type in ("int", "long"):
        return _wild_ints
    if avro_type == "double":
        return _wild_floats
    if isinstance(avro_type, list):
        other = next(t for t in avro_type if t != "null")
        return st.none() | _wild(other)
    if avro_type.get("logicalType") == "timestamp-micros":
        return _wild_times
    if avro_type["type"] == "enum":
        return st.sampled_from(avro_type["symbols"]) | st.text(max_size=4)
    keys = st.text(max_size=6) | st.integers()
    values = _wild(avro_type["values"])
    return st.dictionaries(keys, values, max_size=4) | st.dictionaries(st.text(max_size=6), values, max_size=4).map(
        MappingProxyType
    )


@st.composite
def wild_records(draw: st.DrawFn) -> tuple[type[Event], dict[str, Any]]:
    event_type = draw(st.sampled_from(EVENT_TYPES))
    return event_type, {f["name"]: draw(_wild(f["type"])) for f in schema_dict(event_type)["fields"]}


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wild_records())
def test_any_value_gives_fastavro_bytes_or_a_refusal(drawn: tuple[type[Event], dict[str, Any]]) -> None:
    event_type, record = drawn
    try:
        body = fast(event_type).encode(SimpleNamespace(**record))
    except Exception:  # refused: the codec asks fastavro
        return
    plain = {k: dict(v) if isinstance(v, MappingProxyType) else v for k, v in record.items()}
    assert body == fastavro_bytes(event_type, plain)


def test_plain_values_are_not_refused() -> None:
    """The worker's own values take the compiled path (a refusal there would cost the speed-up)."""
    signal = make_signal(attrs={"tf": "1m"}, stop_price=99.0, target_price=None)
    decided = SizeDecided(
        ts_event=T0,
        signal_id="s",
        symbol="X",
        strategy_id="S1",
        multiplier=1.0,
        qty=3,
        policy="RULES",
        reason="r" * 200,
        model_version="v1",
        latency_us=2**40,
    )
    for event in (signal, decided, make_bar(bid=100.5, ask=100.75)):
        assert fast(type(event)).encode(event) == fastavro_bytes(type(event), record_of(event))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stop_price", 99),
        ("signal_id", type("S", (str,), {})("sig")),
        ("ts_event", datetime(2024, 1, 1)),
        ("attrs", {"k": 1}),
    ],
    ids=["int in a nullable double", "str subclass", "naive datetime", "int in a string map"],
)
def test_unusual_values_are_refused(field: str, value: Any) -> None:
    record = record_of(make_signal()) | {field: value}
    with pytest.raises((Refused, TypeError, ValueError)):
        fast(SignalRaised).encode(SimpleNamespace(**record))


def test_map_keys_equal_to_known_keys_but_not_str_are_refused() -> None:
    class Key(str):
        def encode(self, *args: Any, **kwargs: Any) -> bytes:  # what fastavro would call
            return b"other"

    record = record_of(
        FeaturesComputed(
            ts_event=T0,
            signal_id="s",
            symbol="X",
            strategy_id="S1",
            strategy_type="EmaCross",
            feature_set="fs1",
            features={"a": 1.0, "b": 2.0},
        )
    )
    fast(FeaturesComputed).encode(SimpleNamespace(**record))  # the key set is now known
    record["features"] = {Key("a"): 1.0, Key("b"): 2.0}
    with pytest.raises(Refused):
        fast(FeaturesComputed).encode(SimpleNamespace(**record))


def test_refused_event_is_still_encoded_by_fastavro() -> None:
    signal = make_signal(stop_price=99)  # an int: fastavro's union branch choice is left to fastavro
    codec = EventCodec(InMemoryRegistry())
    want = frame(
        codec.schema_id("t", SignalRaised), encode_body(PARSED[SignalRaised], field_names(SignalRaised), signal)
    )
    assert codec.encode("t", signal) == want
    assert codec.decode(want) == signal


# --- the head reader on arbitrary bytes: fastavro's values of those fields, or a refusal ------------


@st.composite
def damaged_bodies(draw: st.DrawFn) -> tuple[type[Event], bytes]:
    event = draw(any_event())
    body = bytearray(fastavro_bytes(type(event), record_of(event)))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["cut", "append", "flip", "insert"]))
        at = draw(st.integers(0, max(len(body) - 1, 0)))
        if how == "cut":
            del body[at:]
        elif how == "append":
            body += draw(st.binary(min_size=1, max_size=12))
        elif how == "flip" and body:
            body[at] = draw(st.integers(0, 255))
        else:
            body[at:at] = draw(st.binary(min_size=1, max_size=12))
    return type(event), bytes(body)


HEADS: list[tuple[str, ...]] = [
    ("ts_event", "symbol"),
    ("signal_id",),
    ("event_id", "ts_init"),
    ("source_offset",),
    ("status",),
    ("stop_price", "target_price"),
    ("model_version",),
    ("side", "qty"),
    ("raw_key",),
]


def head_or_none(event_type: type[Event], body: bytes, names: tuple[str, ...]) -> tuple[bool, Any]:
    """(True, the head reader's values) or (False, None) when it refuses or there is none for these names."""
    head = head_decoder(event_type, names)
    if head is None:
        return False, None
    try:
        return True, head(body)
    except Exception:  # refused: the codec decodes the body in full
        return False, None


def fastavro_head(event_type: type[Event], body: bytes, names: tuple[str, ...]) -> dict[str, Any]:
    """What fastavro reads for ``names`` from the fields of ``body`` up to the last of them (it ignores the rest)."""
    fields = schema_dict(event_type)["fields"]
    last = max(i for i, f in enumerate(fields) if f["name"] in names)
    prefix = fastavro.parse_schema(schema_dict(event_type) | {"fields": fields[: last + 1]})
    record = fastavro.schemaless_reader(io.BytesIO(body), prefix, None)
    return {name: record[name] for name in names}


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_bodies(), st.sampled_from(HEADS))
def test_the_head_of_any_body_is_fastavro_values_or_a_refusal(
    drawn: tuple[type[Event], bytes], names: tuple[str, ...]
) -> None:
    event_type, body = drawn
    names = tuple(n for n in names if n in field_names(event_type)) or ("event_id",)
    read, head = head_or_none(event_type, body, names)
    try:
        want = fastavro_head(event_type, body, names)
    except Exception:  # a body fastavro refuses: the head reader checks only what it reads (decode validates)
        return
    if read:
        assert identical(head, want)


def test_no_head_reader_past_a_map() -> None:
    assert head_decoder(SignalRaised, ("attrs",)) is None and head_decoder(SignalRaised, ("event_id",)) is not None


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff" * 10 + b"\x01",  # 11 bytes
        b"\xff" * 9 + b"\x7f",  # 10 bytes, beyond 64 bits
    ],
)
def test_overlong_varints_are_refused(raw: bytes) -> None:
    with pytest.raises(Refused):
        _read_varint(raw, 0)


@settings(max_examples=2000, deadline=None)
@given(st.integers(-(2**63), 2**63 - 1) | st.integers(-300, 300) | st.integers(-(2**55), 2**55))
def test_varint_is_the_spec_zigzag(n: int) -> None:
    raw = varint(n)
    assert raw == _long(n)  # the independent encoder of test_codec
    assert _read_varint(raw + b"\x05", 0) == (n, len(raw))


@pytest.mark.parametrize("n", [2**63, -(2**63) - 1, 2**70])
def test_varint_refuses_beyond_a_long(n: int) -> None:
    with pytest.raises(Refused):
        varint(n)


# --- through EventCodec -----------------------------------------------------------------------


def test_encode_of_our_own_events_does_not_call_fastavro(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = EventCodec(InMemoryRegistry())
    signal = make_signal(attrs={"tf": "1m", "note": "é"}, stop_price=99.0)
    decided = SizeDecided(
        ts_event=T0,
        signal_id="s",
        symbol="X",
        strategy_id="S1",
        multiplier=1.0,
        qty=3.0,
        policy="RULES",
        reason="r",
        latency_us=5,
    )
    features = FeaturesComputed(
        ts_event=T0,
        signal_id="s",
        symbol="X",
        strategy_id="S1",
        strategy_type="EmaCross",
        feature_set="fs1",
        features={f"f{i}": i / 7 for i in range(80)},
    )
    messages = [(event, codec.encode("t", event)) for event in (signal, decided, features)]

    def no_fastavro(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("fastavro called")

    monkeypatch.setattr(fastavro, "schemaless_writer", no_fastavro)
    for event, message in messages:
        assert codec.encode("t", event) == message
    monkeypatch.undo()
    assert [codec.decode(m) for _, m in messages] == [e for e, _ in messages]


def test_newer_writer_schema_is_resolved_by_fastavro() -> None:
    """A writer schema other than ours (BACKWARD evolution)."""
    import json

    v2 = json.loads(schema_text(SignalRaised))
    v2["fields"].append({"name": "venue", "type": "string", "default": ""})
    registry = InMemoryRegistry()
    schema_id = registry.register("rlsizer.signals-value", json.dumps(v2))
    signal = make_signal()
    body = encode_body(
        fastavro.parse_schema(v2),
        tuple(f["name"] for f in v2["fields"]),
        SimpleNamespace(**record_of(signal), venue="XNAS"),
    )  # type: ignore[arg-type]
    assert EventCodec(registry).decode(frame(schema_id, body)) == signal


def test_nan_on_the_wire_is_still_an_invalid_value() -> None:
    registry = InMemoryRegistry()
    schema_id = registry.register("x", schema_text(SignalRaised))
    body = fastavro_bytes(SignalRaised, record_of(make_signal()) | {"price": math.nan})
    with pytest.raises(DecodeError, match="price must be a finite number") as info:
        EventCodec(registry).decode(frame(schema_id, body))
    assert info.value.kind == "invalid_value"


def test_timestamps_in_any_zone_are_written_as_fastavro_writes_them() -> None:
    ts = datetime(2024, 3, 1, 9, 30, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
    # a record, not an event: a time before 1990 is no valid event (schemas.events), but the codec still writes it
    values = record_of(make_signal(ts_event=ts)) | {"ts_init": datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)}
    body = fast(SignalRaised).encode(SimpleNamespace(**values))
    assert body == fastavro_bytes(SignalRaised, values)
    record = fastavro_record(SignalRaised, body)
    assert record["ts_event"] == ts and record["ts_event"].tzinfo is UTC


# --- the generated code's inline cases and their edges ----------------------------------------

# Zigzag values 2**49 .. 2**56 - 1 are the 8-byte varints written and read inline (timestamps of
# 1978-3111 and before 1961); just outside they take the generic varint code.
_EDGE_MICROS = sorted(
    {m for z in (0x80, 1 << 49, 1 << 56, 1 << 63) for d in (-2, -1, 0, 1) for m in ((z + d) >> 1, -((z + d) >> 1) - 1)}
)


@pytest.mark.parametrize("micros", [m for m in _EDGE_MICROS if -62135596800000000 <= m < 253402300800000000])
def test_timestamps_at_the_edges_of_the_inline_varint(micros: int) -> None:
    ts = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    for value in (ts, ts.astimezone(timezone(timedelta(hours=5, minutes=30))), micros):
        record = record_of(make_signal()) | {"ts_event": value, "ts_init": value}
        body = fast(SignalRaised).encode(SimpleNamespace(**record))
        assert body == fastavro_bytes(SignalRaised, record)
        assert head_or_none(SignalRaised, body, ("ts_event", "ts_init")) == (
            True,
            fastavro_head(SignalRaised, body, ("ts_event", "ts_init")),
        )


@pytest.mark.parametrize("micros", _EDGE_MICROS)
def test_timestamp_ints_at_the_edges_give_fastavro_bytes_or_a_refusal(micros: int) -> None:
    record = record_of(make_signal()) | {"ts_event": micros}
    try:
        body = fast(SignalRaised).encode(SimpleNamespace(**record))
    except Refused:
        assert not -(2**63) <= micros < 2**63
        return
    assert body == fastavro_bytes(SignalRaised, record)


def _writer_varint(n: int, overlong: bool) -> bytes:
    """The zigzag varint of ``n``; overlong: one more group of zeros (as some writers pad), which fastavro reads alike."""
    raw = _long(n)
    return raw[:-1] + bytes([raw[-1] | 0x80, 0]) if overlong and len(raw) < 10 else raw


def _independent_body(event_type: type[Event], record: dict[str, Any], overlong: Any, upto: int | None = None) -> bytes:
    """An Avro body of ``record`` (its fields before ``upto``) written field by field here, each varint
    overlong when ``overlong()`` says so."""

    def varint(n: int) -> bytes:
        return _writer_varint(n, overlong())

    def value(avro_type: Any, v: Any) -> bytes:
        if avro_type == "string":
            return value("bytes", v.encode())
        if avro_type == "bytes":
            return varint(len(v)) + v
        if avro_type in ("int", "long"):
            return varint(v)
        if avro_type == "double":
            return struct.pack("<d", v)
        if isinstance(avro_type, list):
            index = 0 if v is None else 1 - avro_type.index("null")
            return varint(index) + (b"" if v is None else value(avro_type[index], v))
        if avro_type.get("logicalType") == "timestamp-micros":
            return varint((v - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1))
        if avro_type["type"] == "enum":
            return varint(avro_type["symbols"].index(v))
        entries = b"".join(value("string", k) + value(avro_type["values"], x) for k, x in v.items())
        return (varint(len(v)) + entries if v else b"") + varint(0)

    return b"".join(value(f["type"], record[f["name"]]) for f in schema_dict(event_type)["fields"][:upto])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_event(), st.randoms(use_true_random=False), st.sampled_from([0.0, 0.1, 0.5, 1.0]))
def test_overlong_varints_give_fastavro_values_or_a_refusal(event: Event, rnd: Any, share: float) -> None:
    """Lengths, longs, timestamps, enum and union indexes spelt in more bytes than needed: the head reader
    reads them as fastavro does (or refuses), never misreads them."""
    event_type = type(event)
    body = _independent_body(event_type, record_of(event), lambda: rnd.random() < share)
    if share == 0.0:
        assert body == fastavro_bytes(event_type, record_of(event))  # the independent writer is the spec's
    for names in HEADS:
        names = tuple(n for n in names if n in field_names(event_type)) or ("event_id",)
        read, head = head_or_none(event_type, body, names)
        if read:
            assert identical(head, fastavro_head(event_type, body, names))
        elif share == 0.0:
            assert head_decoder(event_type, names) is None  # a plain body is never refused


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.__name__)
def test_negative_one_byte_lengths_are_refused_or_read_as_fastavro(event_type: type[Event]) -> None:
    """An odd length byte (a negative length) is not a short length: fastavro reads the rest of the body
    for it (and then, as a rule, fails), so the head reader must not read it as one."""
    fields = schema_dict(event_type)["fields"]
    record = {f["name"]: _plain_value(f["type"]) for f in fields}
    for i, f in enumerate(fields):
        if f["type"] not in ("string", "bytes", ["null", "string"], ["null", "bytes"]):
            continue
        empty = {**record, f["name"]: b"" if "bytes" in f["type"] else ""}
        before = len(_independent_body(event_type, empty, lambda: False, upto=i))
        before += isinstance(f["type"], list)  # the union index
        body = _independent_body(event_type, empty, lambda: False)
        assert body[before] == 0
        for negative in (1, 3):  # -1, -2 where the 0 of the empty value is
            damaged = body[:before] + bytes([negative]) + body[before + 1 :]
            with pytest.raises(EOFError):
                fastavro_record(event_type, damaged)
            head = head_decoder(event_type, (f["name"],))
            if head is not None:  # a field after a map has none
                with pytest.raises(Exception):  # noqa: B017 (any exception sends the body to fastavro)
                    head(damaged)


def _plain_value(avro_type: Any) -> Any:
    if avro_type in ("string", ["null", "string"]):
        return "ab"
    if avro_type in ("bytes", ["null", "bytes"]):
        return b"ab"
    if avro_type in ("int", "long"):
        return 5
    if avro_type in ("double", ["null", "double"]):
        return 1.5
    if avro_type.get("logicalType") == "timestamp-micros":
        return T0
    if avro_type["type"] == "enum":
        return avro_type["symbols"][0]
    return {"k": "v"} if avro_type["values"] == "string" else {"k": 1.0}


def test_switching_the_compiled_codec_off_acts_on_a_codec_already_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/bench_codec.py compares both paths on one EventCodec by replacing schemas.codec.compiled and head_decoder."""
    codec = EventCodec(InMemoryRegistry())
    decision = SizeDecided(
        ts_event=T0,
        signal_id="s",
        symbol="X",
        strategy_id="S1",
        multiplier=1.0,
        qty=3.0,
        policy="RULES",
        reason="r",
        latency_us=5,
    )
    message = codec.encode("t", decision)
    calls: list[str] = []
    reader, writer = fastavro.schemaless_reader, fastavro.schemaless_writer
    monkeypatch.setattr(fastavro, "schemaless_reader", lambda *a, **k: calls.append("read") or reader(*a, **k))
    monkeypatch.setattr(fastavro, "schemaless_writer", lambda *a, **k: calls.append("write") or writer(*a, **k))
    assert codec.encode("t", decision) == message
    assert codec.decode_head(message, ("symbol",)) == (SizeDecided, {"symbol": "X"})
    assert calls == []
    monkeypatch.setattr(codec_module, "compiled", lambda event_type: None)
    monkeypatch.setattr(codec_module, "head_decoder", lambda event_type, names: None)
    assert codec.encode("t", decision) == message
    assert codec.decode_head(message, ("symbol",)) == (SizeDecided, {"symbol": "X"})
    assert calls == ["write", "read"]
