"""Compiled Avro body encoders and decoders for our own event schemas.

fastavro interprets the schema on every call: about 40 us to write one
FeaturesComputed or SizeDecided and 20 us to read one SignalRaised, a large part
of the worker's time per signal. ``compiled(event_type)`` builds, once per event
type, an encoder (event -> Avro body) and a decoder (body -> the record dict that
``fastavro.schemaless_reader`` returns) specialised to that schema.

Both are generated Python source, compiled with ``exec`` once per schema
(``_Source``; ``schemas.fast_avro_encode`` and ``schemas.fast_avro_decode`` write
it): one straight-line function per schema and direction, because a call per
field cost as much as the work itself. The encoder reads each field as an
attribute, writes a short string's length from a table, a run of doubles with one
``struct`` call, an 8-byte timestamp from a table of 14-bit pairs, and joins the
parts (after the caller's framing header) with one ``b"".join``. The decoder
reads one-byte lengths, varints and enum and union indexes inline, an 8-byte
timestamp by gathering its 7-bit groups from one ``int.from_bytes``, a run of
doubles with one ``struct`` call, and returns one dict literal. Anything less
usual (long strings, other varints, maps, unions of strings) goes to the small
closures kept for it: the same code ``head_decoder`` reads with. Maps of doubles
remember the key sets already seen (their key bytes and a ``struct`` laying out
the whole map), so that the live feature map is one ``struct`` call each way.

The contract is fastavro's, to the byte and to the value (same Python types,
timestamps as ``datetime`` in ``timezone.utc``). Where that cannot be certain the
compiled code does not guess, it refuses and the caller uses fastavro:

* a schema with a type not listed below compiles to nothing (``Unsupported``);
* the encoder raises (``Refused`` or any other exception) on a value whose type
  is not the plain one (``str``, ``int``, aware ``datetime``, ...; map keys must be
  exactly ``str``: fastavro calls a key's own ``encode``);
* the decoder raises on bytes that are short, have bytes left over, or hold
  anything fastavro reads in its own way (an out-of-range enum or union index,
  a varint longer than 64 bits, a negative length).

Supported field types: ``string``, ``bytes``, ``int``, ``long``, ``double``,
``long`` with logical type ``timestamp-micros``, ``enum``, a two-branch union of
``null`` and ``string``/``double``/``bytes``, and maps of ``double`` or ``string``.
The decoder is for bodies written with exactly our schema: no schema resolution.
This module holds what both directions share; the two modules named above are
imported when a schema is first compiled.
"""

from __future__ import annotations

import keyword
import struct
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any, Final, Protocol

from schemas.catalog import schema_dict
from schemas.events import Event

Encoder = Callable[[Any], bytes]


class RecordEncoder(Protocol):
    """``head`` followed by the Avro body of ``event`` (raises when fastavro must write it)."""

    def __call__(self, event: object, head: bytes = b"") -> bytes: ...


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
    for name in names:  # they are written into the generated source
        if not name.isidentifier() or keyword.iskeyword(name):
            raise Unsupported(f"field {name!r}: not a Python identifier")
    kinds = [_kind(f["name"], f["type"]) for f in schema["fields"]]
    from schemas.fast_avro_decode import record_decoder  # here: both import this module
    from schemas.fast_avro_encode import record_encoder
    return CompiledSchema(
        name=str(schema.get("name")),
        encode=record_encoder(names, kinds),
        decode=record_decoder(names, kinds),
    )


@cache
def head_decoder(event_type: type[Event], names: tuple[str, ...]) -> Callable[[bytes], dict[str, Any]] | None:
    """A reader of only ``names`` from a body of ``event_type``'s schema, or None when one is not compiled.

    It reads the fields in order up to the last of ``names`` and stops there: the
    bytes after it are neither read nor checked, so it serves bookkeeping that
    needs a record's ids (the reconciler), never validation.
    """
    from schemas.fast_avro_decode import head_reader

    return head_reader(schema_dict(event_type), names)


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


# --- generated source and what both directions use ---------------------------------------


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


def _length_prefixed(raw: bytes) -> bytes:
    """``raw`` after its length as a varint (an Avro string's or bytes' encoding)."""
    n = len(raw)
    return (_ONE_BYTE[n << 1] if n < 0x40 else _varint(n)) + raw


def _encode_string(value: Any) -> bytes:
    if type(value) is not str:
        raise Refused(f"not a str: {type(value).__name__}")
    return _length_prefixed(value.encode())


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
