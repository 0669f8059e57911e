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
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from types import MappingProxyType
from typing import Any, Final, Protocol

from schemas.catalog import schema_dict
from schemas.events import Event

Encoder = Callable[[Any], bytes]


class RecordEncoder(Protocol):
    """``head`` followed by the Avro body of ``event`` (raises when fastavro must write it)."""

    def __call__(self, event: object, head: bytes = b"") -> bytes: ...


# A decoding step reads one value (or a run of values) from ``buf`` at ``pos``,
# appends it to ``out`` and returns the position after it.
Step = Callable[[bytes, int, list[Any]], int]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)  # fastavro's epoch, tzinfo included
_MICROSECOND: Final = timedelta(microseconds=1)
_LONG_MIN: Final = -(1 << 63)
_LONG_MAX: Final = (1 << 63) - 1
_DOUBLE: Final = struct.Struct("<d")
_ONE_BYTE: Final = tuple(bytes((i,)) for i in range(0x80))
_LENGTH: Final = tuple(bytes((n << 1,)) for n in range(0x40))  # [n]: the varint of a length n < 64
_CONTINUED: Final = tuple(bytes((i | 0x80,)) for i in range(0x80))  # [i]: a 7-bit group with more to come


@cache
def _CONTINUED_PAIRS() -> tuple[bytes, ...]:  # noqa: N802 (a constant, built on first use: 16384 bytes objects, ~0.8 MB)
    """[c]: two 7-bit groups of a 14-bit ``c``, both with more to come."""
    return tuple(bytes(((c & 0x7F) | 0x80, (c >> 7) | 0x80)) for c in range(1 << 14))
_SPREAD_LIMIT: Final = 1 << 56  # varints of up to 8 bytes are built without a loop
_CONTINUATION: Final = tuple(int.from_bytes(b"\x80" * (size - 1), "little") for size in range(9))  # [size]
_MAX_SHAPES: Final = 64  # key sets remembered per map field (the live feature maps have one)


class Unsupported(Exception):
    """A schema holds a type the compiled codec does not handle: use fastavro for it."""


class Refused(ValueError):
    """A value or a body the compiled codec does not handle exactly as fastavro: use fastavro."""


@dataclass(frozen=True, slots=True)
class CompiledSchema:
    """One schema's encoder (event -> body bytes, after ``head``) and decoder (body bytes -> record dict)."""

    name: str
    encode: RecordEncoder
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


# --- generated source ---------------------------------------------------------------------


class _Source:
    """Python source of one generated function and the constants it names (``_c0``, ``_c1``, ...)."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = {}
        self._by_id: dict[int, str] = {}

    def const(self, value: Any) -> str:
        name = self._by_id.get(id(value))
        if name is None:
            name = self._by_id[id(value)] = f"_c{len(self.names)}"
            self.names[name] = value  # held here, so its id is not reused while the source is built
        return name

    def function(self, name: str, lines: list[str]) -> Callable[..., Any]:
        namespace = dict(self.names)
        exec(compile("\n".join(lines), f"<fast_avro {name}>", "exec"), namespace)  # noqa: S102 (our own source)
        function: Callable[..., Any] = namespace[name]
        return function


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


def _nullable_encoder(null_index: int, inner: str) -> Encoder:
    """A union of null and a string or bytes (the double one is generated inline)."""
    null = _varint(null_index)
    branch = _varint(1 - null_index)
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

    keys: tuple[str, ...]  # interned: a map whose keys are interned compares by identity
    key_bytes: tuple[bytes, ...]  # the first one carries the entry count in front
    layout: struct.Struct


def _shape(keys: tuple[str, ...]) -> _Shape:
    if not all(type(k) is str for k in keys):
        raise Refused("map keys must be str")
    key_bytes = [_encode_string(k) for k in keys]
    key_bytes[0] = _varint(len(keys)) + key_bytes[0]
    layout = struct.Struct("<" + "".join(f"{len(kb)}sd" for kb in key_bytes) + "B")
    return _Shape(tuple(map(sys.intern, keys)), tuple(key_bytes), layout)


def _double_map_encoder() -> Encoder:
    shapes: dict[tuple[str, ...], _Shape] = {}
    last: _Shape | None = None  # the live feature maps have one key set: compare with it before hashing

    def encode(value: Any) -> bytes:
        nonlocal last
        _check_map(value)
        if not value:
            return b"\x00"
        # Exact str keys only (fastavro calls a key's own encode()): sys.intern raises
        # TypeError for a str subclass, and gives the interned key, so that the
        # comparison below is by identity when the key set is the last one.
        try:
            keys = tuple(map(sys.intern, value))
        except TypeError:
            raise Refused("map keys must be str") from None
        shape = last
        if shape is None or keys != shape.keys:
            shape = shapes.get(keys)
            if shape is None:
                shape = _shape(keys)
                if len(shapes) < _MAX_SHAPES:
                    shapes[keys] = shape
            last = shape
        args: list[Any] = [0] * (2 * len(keys) + 1)
        args[0:-1:2] = shape.key_bytes
        args[1:-1:2] = value.values()  # packed with struct's float conversion, as fastavro's write_double
        return shape.layout.pack(*args)

    return encode


def _field_encoder(kind: _Kind) -> Encoder:
    """The encoder the generated code calls for a field it does not write inline."""
    if kind.tag == "bytes":
        return _encode_bytes
    if kind.tag == "nullable" and kind.inner != "double":
        return _nullable_encoder(kind.null_index, kind.inner)
    if kind.tag == "map":
        return _double_map_encoder() if kind.inner == "double" else _encode_string_map
    raise Unsupported(f"no encoder for {kind}")


def _record_encoder(names: tuple[str, ...], kinds: list[_Kind]) -> RecordEncoder:
    """A generated function: one attribute read per field, no call per field, one ``b"".join`` (``head`` first)."""
    src = _Source()
    lines = ["def encode(event, head=b''):"]
    parts = ["head"]
    i = 0
    while i < len(names):
        j = i
        while j < len(names) and kinds[j].tag == "double":
            j += 1
        if j - i > 1:  # a run of doubles: one struct call
            pack = src.const(struct.Struct(f"<{j - i}d").pack)
            parts.append(f"{pack}({', '.join(f'float(event.{name})' for name in names[i:j])})")
            i = j
            continue
        lines += [f"    v = event.{names[i]}"] + [f"    {line}" for line in _encode_lines(src, i, names[i], kinds[i])]
        parts.append({"string": f"h{i}, r{i}", "timestamp": f"r{i}, r{i}b, r{i}c, r{i}d, r{i}e"}.get(kinds[i].tag, f"r{i}"))
        i += 1
    lines.append(f"    return b''.join(({', '.join(parts)},))")
    return src.function("encode", lines)


def _encode_lines(src: _Source, i: int, name: str, kind: _Kind) -> list[str]:
    """Statements that set ``r{i}`` (and ``h{i}``, a string's length) from ``v``, the value of field ``name``."""
    refuse = f"raise {src.const(Refused)}(f'{name}: {{type(v).__name__}} {{v!r:.40}} is not written as fastavro would here')"
    if kind.tag == "string":
        return [
            f"if type(v) is not str: {refuse}",
            f"r{i} = v.encode()",
            "n = len(r%d)" % i,
            f"h{i} = {src.const(_LENGTH)}[n] if n < 0x40 else {src.const(_varint)}(n)",
        ]
    if kind.tag == "timestamp":  # fastavro: an aware datetime as micros since the epoch (always a long), an int as is
        pairs = src.const(_CONTINUED_PAIRS())
        return [
            f"if type(v) is {src.const(datetime)} and v.tzinfo is not None:",
            f"    n = (v - {src.const(_EPOCH)}) // {src.const(_MICROSECOND)}",
            "    z = (n << 1) ^ (n >> 63)",
            f"    if {1 << 49} <= z < {1 << 56}:  # 8 bytes (2**48 <= |n| < 2**55 us: years 1978-3111): 5 parts",
            f"        r{i} = {pairs}[z & 0x3FFF]",
            f"        r{i}b = {pairs}[z >> 14 & 0x3FFF]",
            f"        r{i}c = {pairs}[z >> 28 & 0x3FFF]",
            f"        r{i}d = {src.const(_CONTINUED)}[z >> 42 & 0x7F]",
            f"        r{i}e = {src.const(_ONE_BYTE)}[z >> 49]",
            "    else:",
            f"        r{i}, r{i}b, r{i}c, r{i}d, r{i}e = {src.const(_varint)}(n), b'', b'', b'', b''",
            "elif type(v) is int:",
            f"    r{i}, r{i}b, r{i}c, r{i}d, r{i}e = {src.const(_varint)}(v), b'', b'', b'', b''",
            "else:",
            f"    {refuse}",
        ]
    if kind.tag == "enum":
        table = src.const({symbol: _varint(k) for k, symbol in enumerate(kind.symbols)})
        return [f"r{i} = {table}.get(v) if type(v) is str else None", f"if r{i} is None: {refuse}"]
    if kind.tag == "nullable" and kind.inner == "double":  # fastavro picks the double branch for any float
        null, branch = src.const(_varint(kind.null_index)), src.const(_varint(1 - kind.null_index))
        return [
            f"if v is None: r{i} = {null}",
            f"elif isinstance(v, float): r{i} = {branch} + {src.const(_DOUBLE.pack)}(v)",
            f"else: {refuse}",
        ]
    if kind.tag == "double":
        return [f"r{i} = {src.const(_DOUBLE.pack)}(float(v))"]  # fastavro calls float() on a double field
    if kind.tag in ("int", "long"):
        return [
            f"if type(v) is not int: {refuse}",
            f"r{i} = {src.const(_ONE_BYTE)}[(v << 1) ^ (v >> 63)] if -0x40 <= v < 0x40 else {src.const(_varint)}(v)",
        ]
    return [f"r{i} = {src.const(_field_encoder(kind))}(v)"]


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
    """A generated function reading the fields in order into ``f0``, ``f1``, ...; every byte must be used.

    Lengths and varints of one byte, timestamps of eight and runs of doubles are
    read inline, anything else by the steps below. Positions are not checked
    against the body's size on the way: ``pos`` only grows, a read past the end
    raises or leaves ``pos`` beyond the end, and then the last check refuses it.
    """
    src = _Source()
    lines = ["def decode(body):", "    buf = body if type(body) is bytes else bytes(body)", "    pos = 0"]
    i = 0
    while i < len(names):
        j = i
        while j < len(names) and kinds[j].tag == "double":
            j += 1
        if j > i:  # a run of doubles: one struct call
            unpack = src.const(struct.Struct(f"<{j - i}d").unpack_from)
            lines += [f"    {', '.join(f'f{k}' for k in range(i, j))}, = {unpack}(buf, pos)", f"    pos += {8 * (j - i)}"]
            i = j
            continue
        lines += [f"    {line}" for line in _decode_lines(src, f"f{i}", kinds[i])]
        i += 1
    refused = src.const(Refused)
    lines += [
        "    if pos != len(buf):",
        f"        raise {refused}('short body' if pos > len(buf) else f'{{len(buf) - pos}} bytes left after the record')",
        "    return {" + ", ".join(f"{name!r}: f{k}" for k, name in enumerate(names)) + "}",
    ]
    return src.function("decode", lines)


def _decode_lines(src: _Source, var: str, kind: _Kind) -> list[str]:
    """Statements that read one field of ``kind`` at ``pos`` into ``var`` and move ``pos`` past it."""
    if kind.tag in ("string", "bytes"):
        decode = ".decode()" if kind.tag == "string" else ""
        return [
            "b = buf[pos]",
            "if b & 0x81:  # not a one-byte length, or a negative one",
            f"    start, pos = {src.const(_read_length)}(buf, pos)",
            "else:",
            "    start = pos + 1",
            "    pos = start + (b >> 1)",
            f"{var} = buf[start:pos]{decode}",
        ]
    if kind.tag in ("int", "long"):
        return [
            "b = buf[pos]",
            f"if b < 0x80: {var} = (b >> 1) ^ -(b & 1); pos += 1",
            f"else: {var}, pos = {src.const(_read_varint)}(buf, pos)",
        ]
    if kind.tag == "timestamp":  # fastavro: epoch + timedelta(microseconds=value)
        return [
            "x = int.from_bytes(buf[pos:pos + 8], 'little')",
            "if x & 0x8080808080808080 == 0x0080808080808080:  # 8 bytes: gather the 7-bit groups",
            "    x = (x & 0x007F007F007F007F) | ((x & 0x7F007F007F007F00) >> 1)",
            "    x = (x & 0x00003FFF00003FFF) | ((x & 0x3FFF00003FFF0000) >> 2)",
            "    x = (x & 0x000000000FFFFFFF) | ((x & 0x0FFFFFFF00000000) >> 4)",
            "    n = (x >> 1) ^ -(x & 1)",
            "    pos += 8",
            "else:",
            f"    n, pos = {src.const(_read_varint)}(buf, pos)",
            f"{var} = {src.const(_EPOCH)} + {src.const(timedelta)}(0, 0, n)",
        ]
    if kind.tag == "enum":
        by_byte = src.const(tuple(kind.symbols[b >> 1] if b < 2 * len(kind.symbols) and not b & 1 else None for b in range(256)))
        return [
            f"{var} = {by_byte}[buf[pos]]",
            f"if {var} is None: {var}, pos = {src.const(_run_step)}({src.const(_enum_step(kind.symbols))}, buf, pos)",
            "else: pos += 1",
        ]
    if kind.tag == "nullable":
        null, branch = _varint(kind.null_index)[0], _varint(1 - kind.null_index)[0]
        if kind.inner == "double":
            inner = [f"{var}, = {src.const(_DOUBLE.unpack_from)}(buf, pos)", "pos += 8"]
        else:
            inner = _decode_lines(src, var, _Kind(kind.inner))
        return [
            "b = buf[pos]",
            "pos += 1",
            f"if b == {null}: {var} = None",
            f"elif b == {branch}:",
            *(f"    {line}" for line in inner),
            f"else: raise {src.const(Refused)}(f'union index byte {{b}} is not {null} or {branch}')",
        ]
    if kind.tag == "map":
        step = src.const(_field_step(kind))
        return [
            f"if buf[pos] == 0: {var} = {{}}; pos += 1",
            f"else: {var}, pos = {src.const(_run_step)}({step}, buf, pos)",
        ]
    raise Unsupported(f"no decoder for {kind}")


def _run_step(step: Step, buf: bytes, pos: int) -> tuple[Any, int]:
    """The value ``step`` reads at ``pos`` and the position after it."""
    out: list[Any] = []
    pos = step(buf, pos, out)
    return out[0], pos


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
