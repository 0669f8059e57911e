"""Compiled Avro body encoders and decoders for our own event schemas.

fastavro interprets the schema on every call: about 40 us to write one
FeaturesComputed or SizeDecided and 20 us to read one SignalRaised, a large part
of the worker's time per signal. ``compiled(event_type)`` builds, once per event
type, an encoder (event -> Avro body) and a decoder (body -> the record dict that
``fastavro.schemaless_reader`` returns) specialised to that schema: closures over
precomputed ``struct`` formats, enum tables and, for maps of doubles, the key
bytes of the key sets already seen.

The contract is fastavro's, to the byte and to the value (same Python types,
timestamps as ``datetime`` in ``timezone.utc``). Where that cannot be certain the
compiled code does not guess, it refuses and the caller uses fastavro:

* a schema with a type not listed below compiles to nothing (``Unsupported``);
* the encoder raises (``Refused`` or any other exception) on a value whose type
  is not the plain one (``str``, ``int``, aware ``datetime``, ...);
* the decoder raises on bytes that are short, have bytes left over, or hold
  anything fastavro reads in its own way (an out-of-range enum or union index,
  a varint longer than 64 bits, a negative length).

Supported field types: ``string``, ``bytes``, ``int``, ``long``, ``double``,
``long`` with logical type ``timestamp-micros``, ``enum``, a two-branch union of
``null`` and ``string``/``double``/``bytes``, and maps of ``double`` or ``string``.
The decoder is for bodies written with exactly our schema: no schema resolution.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Final

from schemas.catalog import schema_dict
from schemas.events import Event

Encoder = Callable[[Any], bytes]
# A decoding step reads one value (or a run of values) from ``buf`` at ``pos``,
# appends it to ``out`` and returns the position after it.
Step = Callable[[bytes, int, list[Any]], int]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)  # fastavro's epoch, tzinfo included
_MICROSECOND: Final = timedelta(microseconds=1)
_LONG_MIN: Final = -(1 << 63)
_LONG_MAX: Final = (1 << 63) - 1
_DOUBLE: Final = struct.Struct("<d")
_ONE_BYTE: Final = tuple(bytes((i,)) for i in range(0x80))
_SPREAD_LIMIT: Final = 1 << 56  # varints of up to 8 bytes are built without a loop
_CONTINUATION: Final = tuple(int.from_bytes(b"\x80" * (size - 1), "little") for size in range(9))  # [size]
_MAX_SHAPES: Final = 64  # key sets remembered per map field (the live feature maps have one)


class Unsupported(Exception):
    """A schema holds a type the compiled codec does not handle: use fastavro for it."""


class Refused(ValueError):
    """A value or a body the compiled codec does not handle exactly as fastavro: use fastavro."""


@dataclass(frozen=True, slots=True)
class CompiledSchema:
    """One schema's encoder (event -> body bytes) and decoder (body bytes -> record dict)."""

    name: str
    encode: Callable[[object], bytes]
    decode: Callable[[bytes], dict[str, Any]]


@cache
def compiled(event_type: type[Event]) -> CompiledSchema | None:
    """The compiled codec of ``event_type``'s schema, or None when the schema is unsupported."""
    try:
        return compile_schema(schema_dict(event_type))
    except Unsupported:
        return None


def compile_schema(schema: Mapping[str, Any]) -> CompiledSchema:
    """Compile a record schema (raises ``Unsupported`` for a type not in the module docstring)."""
    if schema.get("type") != "record" or not isinstance(schema.get("fields"), list):
        raise Unsupported(f"not a record schema: {schema.get('name')!r}")
    names = tuple(str(f["name"]) for f in schema["fields"])
    kinds = [_kind(f["name"], f["type"]) for f in schema["fields"]]
    return CompiledSchema(
        name=str(schema.get("name")),
        encode=_record_encoder(names, kinds),
        decode=_record_decoder(names, kinds),
    )


# --- schema -> kind ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Kind:
    """What one field is: ``tag`` plus the enum symbols, the nullable branch or the map values."""

    tag: str  # string bytes int long double timestamp enum nullable map
    symbols: tuple[str, ...] = ()
    null_index: int = 0  # nullable: the position of "null" in the union
    inner: str = ""  # nullable: the other branch; map: the values' type


_PLAIN: Final = frozenset({"string", "bytes", "int", "long", "double"})
_NULLABLE: Final = frozenset({"string", "double", "bytes"})
_MAP_VALUES: Final = frozenset({"string", "double"})


def _kind(field: str, avro_type: Any) -> _Kind:
    if isinstance(avro_type, str):
        if avro_type in _PLAIN:
            return _Kind(avro_type)
    elif isinstance(avro_type, list):
        if len(avro_type) == 2 and "null" in avro_type:
            other = avro_type[1 - avro_type.index("null")]
            if isinstance(other, str) and other in _NULLABLE:
                return _Kind("nullable", null_index=avro_type.index("null"), inner=other)
    elif isinstance(avro_type, dict):
        keys = set(avro_type)
        if avro_type.get("type") == "long" and avro_type.get("logicalType") == "timestamp-micros" and keys == {"type", "logicalType"}:
            return _Kind("timestamp")
        if avro_type.get("type") == "enum":  # a default only matters when resolving against another schema
            symbols = avro_type.get("symbols")
            if isinstance(symbols, list) and symbols and all(isinstance(s, str) for s in symbols) and len(set(symbols)) == len(symbols):
                return _Kind("enum", symbols=tuple(symbols))
        if avro_type.get("type") == "map" and keys == {"type", "values"} and avro_type.get("values") in _MAP_VALUES:
            return _Kind("map", inner=avro_type["values"])
    raise Unsupported(f"field {field!r}: type {avro_type!r} is not compiled")


# --- encoding ---------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    """Zigzag varint of a long, as fastavro writes it (refuses ints outside 64 bits)."""
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise Refused(f"{n} does not fit in an Avro long")
    z = (n << 1) ^ (n >> 63)
    if z < 0x80:
        return _ONE_BYTE[z]
    if z < _SPREAD_LIMIT:  # up to 8 bytes (timestamps): spread the 7-bit groups into bytes at once
        size = (z.bit_length() + 6) // 7
        x = (z & 0xFFFFFFF) | ((z & 0xFFFFFFF0000000) << 4)  # 28-bit halves into 32-bit lanes
        x = (x & 0x00003FFF00003FFF) | ((x & 0x0FFFC0000FFFC000) << 2)  # 14-bit quarters into 16-bit lanes
        x = (x & 0x007F007F007F007F) | ((x & 0x3F803F803F803F80) << 1)  # 7-bit groups into bytes
        return (x | _CONTINUATION[size]).to_bytes(size, "little")
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _encode_string(value: Any) -> bytes:
    if type(value) is not str:
        raise Refused(f"not a str: {type(value).__name__}")
    raw = value.encode()
    n = len(raw)
    return (_ONE_BYTE[n << 1] if n < 0x40 else _varint(n)) + raw


def _encode_bytes(value: Any) -> bytes:
    if type(value) is not bytes:
        raise Refused(f"not bytes: {type(value).__name__}")
    n = len(value)
    return (_ONE_BYTE[n << 1] if n < 0x40 else _varint(n)) + value


def _encode_long(value: Any) -> bytes:
    if type(value) is not int:
        raise Refused(f"not an int: {type(value).__name__}")
    return _varint(value)


def _encode_timestamp(value: Any) -> bytes:
    # fastavro: an aware datetime becomes its microseconds since the epoch, an int is
    # written as is; anything else (naive datetimes: local time) is left to it.
    if type(value) is datetime and value.tzinfo is not None:
        return _varint((value - _EPOCH) // _MICROSECOND)
    if type(value) is int:
        return _varint(value)
    raise Refused(f"not an aware datetime or an int: {type(value).__name__}")


def _encode_double(value: Any) -> bytes:
    return _DOUBLE.pack(float(value))  # fastavro calls float() on a record field of type double


def _double_run(count: int) -> Encoder:
    """Several consecutive double fields in one ``struct`` call."""
    pack = struct.Struct(f"<{count}d").pack

    def encode(values: Sequence[Any]) -> bytes:
        return pack(*map(float, values))

    return encode


def _enum_encoder(symbols: tuple[str, ...]) -> Encoder:
    table = {symbol: _varint(i) for i, symbol in enumerate(symbols)}

    def encode(value: Any) -> bytes:
        if type(value) is not str or value not in table:
            raise Refused(f"not a symbol of {symbols}: {value!r}")
        return table[value]

    return encode


def _nullable_encoder(null_index: int, inner: str) -> Encoder:
    null = _varint(null_index)
    branch = _varint(1 - null_index)
    if inner == "double":  # fastavro picks the double branch for any float, then packs it as is
        pack = _DOUBLE.pack

        def encode_double(value: Any) -> bytes:
            if value is None:
                return null
            if not isinstance(value, float):
                raise Refused(f"not a float: {type(value).__name__}")
            return branch + pack(value)

        return encode_double
    encode_inner = _encode_string if inner == "string" else _encode_bytes

    def encode(value: Any) -> bytes:
        return null if value is None else branch + encode_inner(value)

    return encode


def _check_map(value: Any) -> None:
    if type(value) is not dict and type(value) is not MappingProxyType:
        raise Refused(f"not a dict: {type(value).__name__}")


def _encode_string_map(value: Any) -> bytes:
    _check_map(value)
    if not value:
        return b"\x00"
    parts = [_varint(len(value))]
    for key, item in value.items():
        parts.append(_encode_string(key))
        parts.append(_encode_string(item))
    parts.append(b"\x00")
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class _Shape:
    """One key set of a map of doubles, in order: its key bytes and the struct that lays it out.

    ``layout`` is the whole map (count, then per entry the key's length and bytes
    as one ``s`` item followed by the value's ``d``, then the 0 ending the blocks).
    """

    keys: tuple[str, ...]
    key_types: tuple[type, ...]  # (str, str, ...): what an encoded map's keys must be, exactly
    key_bytes: tuple[bytes, ...]  # the first one carries the entry count in front
    layout: struct.Struct


def _shape(keys: tuple[str, ...]) -> _Shape:
    if not all(type(k) is str for k in keys):
        raise Refused("map keys must be str")
    key_bytes = [_encode_string(k) for k in keys]
    key_bytes[0] = _varint(len(keys)) + key_bytes[0]
    layout = struct.Struct("<" + "".join(f"{len(kb)}sd" for kb in key_bytes) + "B")
    return _Shape(keys, (str,) * len(keys), tuple(key_bytes), layout)


def _double_map_encoder() -> Encoder:
    shapes: dict[tuple[str, ...], _Shape] = {}
    last: _Shape | None = None  # the live feature maps have one key set: compare with it before hashing

    def encode(value: Any) -> bytes:
        nonlocal last
        _check_map(value)
        if not value:
            return b"\x00"
        keys = tuple(value)
        shape = last
        if shape is None or keys != shape.keys:
            shape = shapes.get(keys)
            if shape is None:
                shape = _shape(keys)
                if len(shapes) < _MAX_SHAPES:
                    shapes[keys] = shape
            last = shape
        # Exact str keys only: a key equal to a remembered one but of another type is refused.
        if tuple(map(type, keys)) != shape.key_types:
            raise Refused("map keys must be str")
        args: list[Any] = [0] * (2 * len(keys) + 1)
        args[0:-1:2] = shape.key_bytes
        args[1:-1:2] = value.values()  # packed with struct's float conversion, as fastavro's write_double
        return shape.layout.pack(*args)

    return encode


def _field_encoder(kind: _Kind) -> Encoder:
    if kind.tag == "string":
        return _encode_string
    if kind.tag == "bytes":
        return _encode_bytes
    if kind.tag in ("int", "long"):
        return _encode_long
    if kind.tag == "double":
        return _encode_double
    if kind.tag == "timestamp":
        return _encode_timestamp
    if kind.tag == "enum":
        return _enum_encoder(kind.symbols)
    if kind.tag == "nullable":
        return _nullable_encoder(kind.null_index, kind.inner)
    if kind.tag == "map":
        return _double_map_encoder() if kind.inner == "double" else _encode_string_map
    raise Unsupported(f"no encoder for {kind}")


def _record_encoder(names: tuple[str, ...], kinds: list[_Kind]) -> Callable[[object], bytes]:
    """Fields in order; runs of double fields are packed together."""
    groups: list[tuple[Callable[[object], Any], Encoder]] = []
    i = 0
    while i < len(names):
        j = i
        while j < len(names) and kinds[j].tag == "double":
            j += 1
        if j - i > 1:
            groups.append((attrgetter(*names[i:j]), _double_run(j - i)))
            i = j
        else:
            groups.append((attrgetter(names[i]), _field_encoder(kinds[i])))
            i += 1
    plan = tuple(groups)

    def encode(event: object) -> bytes:
        return b"".join([encode_value(get(event)) for get, encode_value in plan])

    return encode


# --- decoding ---------------------------------------------------------------------------


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A zigzag long at ``pos`` and the position after it (refuses more than 64 bits)."""
    b = buf[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    z = b & 0x7F
    shift = 7
    pos += 1
    while True:
        b = buf[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise Refused("varint longer than 10 bytes")
    if z >> 64:
        raise Refused("varint beyond 64 bits")
    return (z >> 1) ^ -(z & 1), pos


def _read_length(buf: bytes, pos: int) -> tuple[int, int]:
    b = buf[pos]
    if not b & 0x81:  # one byte, not negative: the usual short string
        n = b >> 1
        pos += 1
    else:
        n, pos = _read_varint(buf, pos)
        if n < 0:
            raise Refused("negative length")
    end = pos + n
    if end > len(buf):
        raise Refused("short body")
    return pos, end


def _step_string(buf: bytes, pos: int, out: list[Any]) -> int:
    b = buf[pos]
    if not b & 0x81:  # the usual short string, read inline
        end = pos + 1 + (b >> 1)
        if end > len(buf):
            raise Refused("short body")
        out.append(buf[pos + 1 : end].decode())
        return end
    start, end = _read_length(buf, pos)
    out.append(buf[start:end].decode())
    return end


def _step_bytes(buf: bytes, pos: int, out: list[Any]) -> int:
    start, end = _read_length(buf, pos)
    out.append(buf[start:end])
    return end


def _step_long(buf: bytes, pos: int, out: list[Any]) -> int:
    value, pos = _read_varint(buf, pos)
    out.append(value)
    return pos


def _step_timestamp(buf: bytes, pos: int, out: list[Any]) -> int:
    value, pos = _read_varint(buf, pos)
    out.append(_EPOCH + timedelta(0, 0, value))  # fastavro: epoch + timedelta(microseconds=value)
    return pos


def _double_run_step(count: int) -> Step:
    unpack_from = struct.Struct(f"<{count}d").unpack_from
    size = 8 * count

    def step(buf: bytes, pos: int, out: list[Any]) -> int:
        out.extend(unpack_from(buf, pos))
        return pos + size

    return step


def _enum_step(symbols: tuple[str, ...]) -> Step:
    def step(buf: bytes, pos: int, out: list[Any]) -> int:
        index, pos = _read_varint(buf, pos)
        if not 0 <= index < len(symbols):
            raise Refused(f"enum index {index} out of range")
        out.append(symbols[index])
        return pos

    return step


def _nullable_step(null_index: int, inner: Step) -> Step:
    null = _varint(null_index)[0]  # the index as its one varint byte
    branch = _varint(1 - null_index)[0]

    def step(buf: bytes, pos: int, out: list[Any]) -> int:
        index = buf[pos]
        if index == null:
            out.append(None)
            return pos + 1
        if index != branch:  # another index, or the same one spelt in more bytes: fastavro reads it
            raise Refused(f"union index byte {index} is not {null} or {branch}")
        return inner(buf, pos + 1, out)

    return step


def _string_map_step(buf: bytes, pos: int, out: list[Any]) -> int:
    if buf[pos] == 0:
        out.append({})
        return pos + 1
    result: dict[str, str] = {}
    count, pos = _read_varint(buf, pos)
    while count:
        if count < 0:
            count = -count
            _, pos = _read_varint(buf, pos)  # the block's size in bytes, unused (as fastavro)
        for _ in range(count):
            start, end = _read_length(buf, pos)
            key = buf[start:end].decode()
            start, pos = _read_length(buf, end)
            result[key] = buf[start:pos].decode()
        count, pos = _read_varint(buf, pos)
    out.append(result)
    return pos


def _read_double_map(buf: bytes, pos: int) -> tuple[dict[str, float], int]:
    """A map of doubles read entry by entry (any keys, any blocking), and the position after it."""
    result: dict[str, float] = {}
    unpack_from = _DOUBLE.unpack_from
    count, pos = _read_varint(buf, pos)
    while count:
        if count < 0:
            count = -count
            _, pos = _read_varint(buf, pos)  # the block's size in bytes, unused (as fastavro)
        for _ in range(count):
            start, end = _read_length(buf, pos)
            (result[buf[start:end].decode()],) = unpack_from(buf, end)
            pos = end + 8
        count, pos = _read_varint(buf, pos)
    return result, pos


def _double_map_step() -> Step:
    """Maps of doubles; the last key set seen with this entry count is tried first, in one struct call.

    A key set is only a guess: it is used when the bytes of its keys (and the
    count before them and the 0 after them) are exactly those of the body.
    """
    shapes: dict[bytes, _Shape] = {}  # the count's varint bytes -> the last key set of that size

    def step(buf: bytes, pos: int, out: list[Any]) -> int:
        if buf[pos] == 0:
            out.append({})
            return pos + 1
        count, after = _read_varint(buf, pos)
        head = buf[pos:after]
        shape = shapes.get(head)
        if shape is not None and pos + shape.layout.size <= len(buf):
            items = shape.layout.unpack_from(buf, pos)
            if items[-1] == 0 and items[0:-1:2] == shape.key_bytes:
                out.append(dict(zip(shape.keys, items[1:-1:2])))
                return pos + shape.layout.size
        result, end = _read_double_map(buf, pos)
        if count > 0 and len(result) == count and (head in shapes or len(shapes) < _MAX_SHAPES):
            shapes[head] = _shape(tuple(result))
        out.append(result)
        return end

    return step


def _field_step(kind: _Kind) -> Step:
    if kind.tag == "string":
        return _step_string
    if kind.tag == "bytes":
        return _step_bytes
    if kind.tag in ("int", "long"):
        return _step_long
    if kind.tag == "double":
        return _double_run_step(1)
    if kind.tag == "timestamp":
        return _step_timestamp
    if kind.tag == "enum":
        return _enum_step(kind.symbols)
    if kind.tag == "nullable":
        return _nullable_step(kind.null_index, _field_step(_Kind(kind.inner)))
    if kind.tag == "map":
        return _double_map_step() if kind.inner == "double" else _string_map_step
    raise Unsupported(f"no decoder for {kind}")


def _record_decoder(names: tuple[str, ...], kinds: list[_Kind]) -> Callable[[bytes], dict[str, Any]]:
    """Fields in order; runs of double fields are unpacked together; every byte must be used."""
    steps: list[Step] = []
    i = 0
    while i < len(names):
        j = i
        while j < len(names) and kinds[j].tag == "double":
            j += 1
        if j > i:
            steps.append(_double_run_step(j - i))
            i = j
        else:
            steps.append(_field_step(kinds[i]))
            i += 1
    plan = tuple(steps)

    def decode(body: bytes) -> dict[str, Any]:
        out, pos, size = _read_fields(plan, body)
        if pos != size:
            raise Refused(f"{size - pos} bytes left after the record")
        return dict(zip(names, out))

    return decode


def _read_fields(steps: tuple[Step, ...], body: bytes) -> tuple[list[Any], int, int]:
    """The values ``steps`` read from the start of ``body``, the position after them and the body's size."""
    buf = body if type(body) is bytes else bytes(body)
    out: list[Any] = []
    pos = 0
    for step in steps:
        pos = step(buf, pos, out)
    return out, pos, len(buf)


@cache
def head_decoder(event_type: type[Event], names: tuple[str, ...]) -> Callable[[bytes], dict[str, Any]] | None:
    """A reader of only ``names`` from a body of ``event_type``'s schema, or None when one is not compiled.

    It reads the fields in order up to the last of ``names`` and stops there: the
    bytes after it are neither read nor checked, so it serves bookkeeping that
    needs a record's ids (the reconciler), never validation.
    """
    try:
        schema = schema_dict(event_type)
        fields = [str(f["name"]) for f in schema["fields"]]
        last = max(fields.index(name) for name in names)
        steps = tuple(
            _field_step(kind) if f["name"] in names else _skip_step(kind)
            for f in schema["fields"][: last + 1]
            for kind in (_kind(f["name"], f["type"]),)
        )
    except (Unsupported, ValueError, KeyError):
        return None
    order = [name for name in fields if name in names]  # the order they are read in

    def decode(body: bytes) -> dict[str, Any]:
        return dict(zip(order, _read_fields(steps, body)[0]))

    return decode


def _skip_step(kind: _Kind) -> Step:
    """A step over a field that is not wanted: strings and numbers are passed without building a value."""
    if kind.tag in ("string", "bytes"):
        return _skip_length_prefixed
    if kind.tag in ("int", "long", "timestamp"):
        return _skip_varint
    inner = _field_step(kind)
    return lambda buf, pos, out: inner(buf, pos, [])


def _skip_length_prefixed(buf: bytes, pos: int, out: list[Any]) -> int:
    return _read_length(buf, pos)[1]


def _skip_varint(buf: bytes, pos: int, out: list[Any]) -> int:
    return _read_varint(buf, pos)[1]
