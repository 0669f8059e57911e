"""The encoder of ``schemas.fast_avro``: generated record encoders and the closures they call.

``record_encoder`` writes one function per schema (see ``schemas.fast_avro``);
a field it does not write inline (bytes, a union of null and a string or bytes,
maps) is written by one of the closures below.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from types import MappingProxyType
from typing import Any, Final

from schemas.avro_kinds import ONE_BYTE, Kind, RecordEncoder, Refused, Unsupported, varint
from schemas.rules import EPOCH, MICROSECOND

Encoder = Callable[[Any], bytes]

_DOUBLE: Final = struct.Struct("<d")
_MAX_SHAPES: Final = 64  # key sets remembered per map field (the live feature maps have one)
_LENGTH: Final = ONE_BYTE[::2]  # [n]: the varint of a length n < 64 (the byte n << 1)
_CONTINUED: Final = tuple(bytes((i | 0x80,)) for i in range(0x80))  # [i]: a 7-bit group with more to come


@cache
def _CONTINUED_PAIRS() -> tuple[bytes, ...]:
    """[c]: two 7-bit groups of a 14-bit ``c``, both with more to come."""
    return tuple(bytes(((c & 0x7F) | 0x80, (c >> 7) | 0x80)) for c in range(1 << 14))


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
        exec(compile("\n".join(lines), f"<fast_avro {name}>", "exec"), namespace)
        function: Callable[..., Any] = namespace[name]
        return function


def _length_prefixed(raw: bytes) -> bytes:
    """``raw`` after its length as a varint (an Avro string's or bytes' encoding)."""
    n = len(raw)
    return (ONE_BYTE[n << 1] if n < 0x40 else varint(n)) + raw


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
    key_bytes[0] = varint(len(keys)) + key_bytes[0]
    layout = struct.Struct("<" + "".join(f"{len(kb)}sd" for kb in key_bytes) + "B")
    return _Shape(tuple(map(sys.intern, keys)), tuple(key_bytes), layout)


def _encode_bytes(value: Any) -> bytes:
    if type(value) is not bytes:
        raise Refused(f"not bytes: {type(value).__name__}")
    return _length_prefixed(value)


def _nullable_encoder(null_index: int, inner: str) -> Encoder:
    """A union of null and a string or bytes (the double one is generated inline)."""
    null = varint(null_index)
    branch = varint(1 - null_index)
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
    parts = [varint(len(value))]
    for key, item in value.items():
        parts.append(_encode_string(key))
        parts.append(_encode_string(item))
    parts.append(b"\x00")
    return b"".join(parts)


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


def _field_encoder(kind: Kind) -> Encoder:
    """The encoder the generated code calls for a field it does not write inline."""
    if kind.tag == "bytes":
        return _encode_bytes
    if kind.tag == "nullable" and kind.inner != "double":
        return _nullable_encoder(kind.null_index, kind.inner)
    if kind.tag == "map":
        return _double_map_encoder() if kind.inner == "double" else _encode_string_map
    raise Unsupported(f"no encoder for {kind}")


def record_encoder(names: tuple[str, ...], kinds: list[Kind]) -> RecordEncoder:
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
        parts.append(
            {"string": f"h{i}, r{i}", "timestamp": f"r{i}, r{i}b, r{i}c, r{i}d, r{i}e"}.get(kinds[i].tag, f"r{i}")
        )
        i += 1
    lines.append(f"    return b''.join(({', '.join(parts)},))")
    return src.function("encode", lines)


def _encode_lines(src: _Source, i: int, name: str, kind: Kind) -> list[str]:
    """Statements that set ``r{i}`` (and ``h{i}``, a string's length) from ``v``, the value of field ``name``."""
    refuse = (
        f"raise {src.const(Refused)}(f'{name}: {{type(v).__name__}} {{v!r:.40}} is not written as fastavro would here')"
    )
    if kind.tag == "string":
        return [
            f"if type(v) is not str: {refuse}",
            f"r{i} = v.encode()",
            f"n = len(r{i})",
            f"h{i} = {src.const(_LENGTH)}[n] if n < 0x40 else {src.const(varint)}(n)",
        ]
    if kind.tag == "timestamp":  # fastavro: an aware datetime as micros since the epoch (always a long), an int as is
        pairs = src.const(_CONTINUED_PAIRS())
        return [
            f"if type(v) is {src.const(datetime)} and v.tzinfo is not None:",
            f"    n = (v - {src.const(EPOCH)}) // {src.const(MICROSECOND)}",
            "    z = (n << 1) ^ (n >> 63)",
            f"    if {1 << 49} <= z < {1 << 56}:  # 8 bytes (2**48 <= |n| < 2**55 us: years 1978-3111): 5 parts",
            f"        r{i} = {pairs}[z & 0x3FFF]",
            f"        r{i}b = {pairs}[z >> 14 & 0x3FFF]",
            f"        r{i}c = {pairs}[z >> 28 & 0x3FFF]",
            f"        r{i}d = {src.const(_CONTINUED)}[z >> 42 & 0x7F]",
            f"        r{i}e = {src.const(ONE_BYTE)}[z >> 49]",
            "    else:",
            f"        r{i}, r{i}b, r{i}c, r{i}d, r{i}e = {src.const(varint)}(n), b'', b'', b'', b''",
            "elif type(v) is int:",
            f"    r{i}, r{i}b, r{i}c, r{i}d, r{i}e = {src.const(varint)}(v), b'', b'', b'', b''",
            "else:",
            f"    {refuse}",
        ]
    if kind.tag == "enum":
        table = src.const({symbol: varint(k) for k, symbol in enumerate(kind.symbols)})
        return [f"r{i} = {table}.get(v) if type(v) is str else None", f"if r{i} is None: {refuse}"]
    if kind.tag == "nullable" and kind.inner == "double":  # fastavro picks the double branch for any float
        null, branch = src.const(varint(kind.null_index)), src.const(varint(1 - kind.null_index))
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
            f"r{i} = {src.const(ONE_BYTE)}[(v << 1) ^ (v >> 63)] if -0x40 <= v < 0x40 else {src.const(varint)}(v)",
        ]
    return [f"r{i} = {src.const(_field_encoder(kind))}(v)"]
