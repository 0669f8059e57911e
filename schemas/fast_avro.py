"""Compiled Avro body encoders, and readers of a body's leading fields, for our own event schemas.

What is kept here is what earns its place against fastavro with schemas parsed
once (``fastavro.parse_schema``, ``schemaless_writer``/``schemaless_reader``):
the compiled path takes at most half of fastavro's time on its path.
``bench/bench_codec.py``, best of 9 alternating rounds, 6 runs on the shared 2-core
machine (2026-12-07, load 3-5; 3 of them before the decoder was removed),
compiled/fastavro:

* encoders (``compiled``), per signal on the worker's path: FeaturesComputed (80
  features) 9.5-12.6 against 40.3-49.4 us for the body, 0.22-0.26 (through
  ``EventCodec.encode`` 0.19-0.27); SizeDecided 3.7-4.3 against 14.3-22.9 us,
  0.19-0.26 (``EventCodec.encode`` 0.31-0.34). Kept.
* the head reader (``head_decoder``), which reads ``ts_event`` and ``symbol`` of every
  stored decision when a worker rebuilds its retention index after a rebalance:
  ``EventCodec.decode_head`` of a SizeDecided 5.6-6.1 against 15.1-21.2 us, 0.28-0.38.
  Kept.
* the compiled record decoder (removed): on the worker's input path it took
  0.64-0.71 of fastavro's time for a SignalRaised body, 0.50-0.54 for a BarClosed and
  0.45-0.63 for an OrderFilled; through ``EventCodec.decode`` (framing and the
  dataclass) 0.71-0.77, 0.60-0.61 and 0.53-0.77. Every decode is fastavro's now:
  ``EventCodec.decode`` 19-22 us for a SignalRaised instead of 13.5-15.6.

Both are generated or specialised once per schema. The encoder is Python source
compiled with ``exec`` (``schemas.fast_avro_encode``): one straight-line function
per schema, because a call per field cost as much as the work itself. It reads each
field as an attribute, writes a short string's length from a table, a run of
doubles with one ``struct`` call, an 8-byte timestamp from a table of 14-bit pairs,
and joins the parts (after the caller's framing header) with one ``b"".join``; maps
of doubles remember the key sets already seen (their key bytes and a ``struct``
laying out the whole map), so the live feature map is one ``struct`` call. The head
reader (``schemas.fast_avro_decode``) chains one step per field up to the last one
asked for.

The contract is fastavro's, to the byte and to the value. Where that cannot be
certain the compiled code does not guess, it refuses and the caller uses fastavro:

* a schema with a type not listed below compiles to nothing (``Unsupported``);
* the encoder raises (``Refused`` or any other exception) on a value whose type
  is not the plain one (``str``, ``int``, aware ``datetime``, ...; map keys must be
  exactly ``str``: fastavro calls a key's own ``encode``);
* the head reader raises on bytes that are short or that fastavro reads in its own
  way (an out-of-range enum or union index, a varint longer than 64 bits, a
  negative length), and has nothing to read past a map.

Supported field types: ``string``, ``bytes``, ``int``, ``long``, ``double``,
``long`` with logical type ``timestamp-micros``, ``enum``, a two-branch union of
``null`` and ``string``/``double``/``bytes``, and maps of ``double`` or ``string``.
This module holds the entry points and what both halves share; the two modules
named above are imported when a schema is first compiled.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from schemas.catalog import cache_per_type, schema_dict
from schemas.events import Event


class RecordEncoder(Protocol):
    """``head`` followed by the Avro body of ``event`` (raises when fastavro must write it)."""

    def __call__(self, event: object, head: bytes = b"") -> bytes: ...


_LONG_MIN: Final = -(1 << 63)
_LONG_MAX: Final = (1 << 63) - 1
_ONE_BYTE: Final = tuple(bytes((i,)) for i in range(0x80))
_SPREAD_LIMIT: Final = 1 << 56  # varints of up to 8 bytes are built without a loop
_CONTINUATION: Final = tuple(int.from_bytes(b"\x80" * (size - 1), "little") for size in range(9))  # [size]


class Unsupported(Exception):
    """A schema holds a type the compiled codec does not handle: use fastavro for it."""


class Refused(ValueError):
    """A value or a body the compiled codec does not handle exactly as fastavro: use fastavro."""


@dataclass(frozen=True, slots=True)
class CompiledSchema:
    """One schema's encoder: event -> body bytes, after ``head``."""

    name: str
    encode: RecordEncoder


@cache_per_type
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
    from schemas.fast_avro_encode import record_encoder  # lazy: a cycle, that module imports this one

    return CompiledSchema(name=str(schema.get("name")), encode=record_encoder(names, kinds))


@cache_per_type
def head_decoder(event_type: type[Event], names: tuple[str, ...]) -> Callable[[bytes], dict[str, Any]] | None:
    """A reader of only ``names`` from a body of ``event_type``'s schema, or None when it has none.

    It reads the fields in order up to the last of ``names`` and stops there: the
    bytes after it are neither read nor checked, so it serves bookkeeping that
    needs a record's ids (a worker's retention index, rebuilt after a rebalance), never validation.
    """
    from schemas.fast_avro_decode import head_reader  # lazy: a cycle, that module imports this one

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
        if (
            avro_type.get("type") == "long"
            and avro_type.get("logicalType") == "timestamp-micros"
            and keys == {"type", "logicalType"}
        ):
            return _Kind("timestamp")
        if avro_type.get("type") == "enum":  # a default only matters when resolving against another schema
            symbols = avro_type.get("symbols")
            if (
                isinstance(symbols, list)
                and symbols
                and all(isinstance(s, str) for s in symbols)
                and len(set(symbols)) == len(symbols)
            ):
                return _Kind("enum", symbols=tuple(symbols))
        if avro_type.get("type") == "map" and keys == {"type", "values"} and avro_type.get("values") in _MAP_VALUES:
            return _Kind("map", inner=avro_type["values"])
    raise Unsupported(f"field {field!r}: type {avro_type!r} is not compiled")


# --- what both halves use --------------------------------------------------------------------


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
