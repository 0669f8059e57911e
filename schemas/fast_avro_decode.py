"""The decoder half of ``schemas.fast_avro``: generated record decoders, and the steps they and ``head_decoder`` use.

A step reads one value (or a run of values) from ``buf`` at ``pos``, appends it
to ``out`` and returns the position after it; steps check what they read, and
``head_reader`` chains them. ``record_decoder`` writes one function per schema
(see ``schemas.fast_avro``) and calls a step for what it does not read inline.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from schemas.fast_avro import (
    _DOUBLE,
    _EPOCH,
    _MAX_SHAPES,
    Refused,
    Unsupported,
    _Kind,
    _kind,
    _Shape,
    _shape,
    _Source,
    _varint,
)

Step = Callable[[bytes, int, list[Any]], int]


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


def _read_string(buf: bytes, pos: int) -> tuple[str, int]:
    start, end = _read_length(buf, pos)
    return buf[start:end].decode(), end


def _read_double(buf: bytes, pos: int) -> tuple[float, int]:
    return _DOUBLE.unpack_from(buf, pos)[0], pos + 8


def _read_map(buf: bytes, pos: int, read_value: Callable[[bytes, int], tuple[Any, int]]) -> tuple[dict[str, Any], int]:
    """A map read entry by entry (any keys, any blocking), each value by ``read_value``, and the position after it."""
    result: dict[str, Any] = {}
    count, pos = _read_varint(buf, pos)
    while count:
        if count < 0:
            count = -count
            _, pos = _read_varint(buf, pos)  # the block's size in bytes, unused (as fastavro)
        for _ in range(count):
            key, pos = _read_string(buf, pos)
            result[key], pos = read_value(buf, pos)
        count, pos = _read_varint(buf, pos)
    return result, pos


def _string_map_step(buf: bytes, pos: int, out: list[Any]) -> int:
    if buf[pos] == 0:
        out.append({})
        return pos + 1
    result, pos = _read_map(buf, pos, _read_string)
    out.append(result)
    return pos


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
        result, end = _read_map(buf, pos, _read_double)
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


def record_decoder(names: tuple[str, ...], kinds: list[_Kind]) -> Callable[[bytes], dict[str, Any]]:
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
            for kind in (_kind(f["name"], f["type"]),)
        )
    except (Unsupported, ValueError, KeyError):
        return None
    order = [name for name in fields if name in names]  # the order they are read in

    def decode(body: bytes) -> dict[str, Any]:
        return dict(zip(order, _read_fields(steps, body)))

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
