"""Reading the leading fields of a body of our own schema: ``schemas.fast_avro.head_decoder``.

A step reads one value from ``buf`` at ``pos``, appends it to ``out`` and returns
the position after it; steps check what they read, and ``head_reader`` chains them
up to the last field asked for. Only plain fields are read here (strings, bytes,
longs, timestamps, doubles, enums, unions of null and one of those): a schema with
anything else before that field gets no head reader, and the codec decodes it in full.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from schemas.avro_kinds import Kind, Refused, Unsupported, kind_of, varint
from schemas.rules import EPOCH

Step = Callable[[bytes, int, list[Any]], int]
_unpack_double = struct.Struct("<d").unpack_from


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
    out.append(EPOCH + timedelta(0, 0, value))  # fastavro: epoch + timedelta(microseconds=value)
    return pos


def _step_double(buf: bytes, pos: int, out: list[Any]) -> int:
    out.append(_unpack_double(buf, pos)[0])  # struct.error when fewer than 8 bytes are left
    return pos + 8


def _enum_step(symbols: tuple[str, ...]) -> Step:
    def step(buf: bytes, pos: int, out: list[Any]) -> int:
        index, pos = _read_varint(buf, pos)
        if not 0 <= index < len(symbols):
            raise Refused(f"enum index {index} out of range")
        out.append(symbols[index])
        return pos

    return step


def _nullable_step(null_index: int, inner: Step) -> Step:
    null = varint(null_index)[0]  # the index as its one varint byte
    branch = varint(1 - null_index)[0]

    def step(buf: bytes, pos: int, out: list[Any]) -> int:
        index = buf[pos]
        if index == null:
            out.append(None)
            return pos + 1
        if index != branch:  # another index, or the same one spelt in more bytes: fastavro reads it
            raise Refused(f"union index byte {index} is not {null} or {branch}")
        return inner(buf, pos + 1, out)

    return step


def _field_step(kind: Kind) -> Step:
    if kind.tag == "string":
        return _step_string
    if kind.tag == "bytes":
        return _step_bytes
    if kind.tag in ("int", "long"):
        return _step_long
    if kind.tag == "double":
        return _step_double
    if kind.tag == "timestamp":
        return _step_timestamp
    if kind.tag == "enum":
        return _enum_step(kind.symbols)
    if kind.tag == "nullable":
        return _nullable_step(kind.null_index, _field_step(Kind(kind.inner)))
    raise Unsupported(f"no head step for {kind}")  # maps: the codec decodes the body in full


def _read_fields(steps: tuple[Step, ...], body: bytes) -> list[Any]:
    """The values ``steps`` read from the start of ``body``."""
    buf = body if type(body) is bytes else bytes(body)
    out: list[Any] = []
    pos = 0
    for step in steps:
        pos = step(buf, pos, out)
    return out


def head_reader(schema: Mapping[str, Any], names: tuple[str, ...]) -> Callable[[bytes], dict[str, Any]] | None:
    """``schemas.fast_avro.head_decoder`` for ``schema``: the fields ``names``, read up to the last of them."""
    try:
        fields = [str(f["name"]) for f in schema["fields"]]
        last = max(fields.index(name) for name in names)
        steps = tuple(
            _field_step(kind) if f["name"] in names else _skip_step(kind)
            for f in schema["fields"][: last + 1]
            for kind in (kind_of(f["name"], f["type"]),)
        )
    except (Unsupported, ValueError, KeyError):
        return None
    order = [name for name in fields if name in names]  # the order they are read in

    def decode(body: bytes) -> dict[str, Any]:
        return dict(zip(order, _read_fields(steps, body), strict=True))

    return decode


def _skip_step(kind: Kind) -> Step:
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
