"""What the compiled Avro encoder and the head reader share: a field's kind, the varint, the errors.

``schemas.fast_avro`` compiles schemas with them, ``schemas.fast_avro_encode`` writes bodies and
``schemas.fast_avro_decode`` reads heads; keeping them here lets those import one another one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol


class RecordEncoder(Protocol):
    """``head`` followed by the Avro body of ``event`` (raises when fastavro must write it)."""

    def __call__(self, event: object, head: bytes = b"") -> bytes: ...


_LONG_MIN: Final = -(1 << 63)
_LONG_MAX: Final = (1 << 63) - 1
ONE_BYTE: Final = tuple(bytes((i,)) for i in range(0x80))
_SPREAD_LIMIT: Final = 1 << 56  # varints of up to 8 bytes are built without a loop
_CONTINUATION: Final = tuple(int.from_bytes(b"\x80" * (size - 1), "little") for size in range(9))  # [size]


class Unsupported(Exception):
    """A schema holds a type the compiled codec does not handle: use fastavro for it."""


class Refused(ValueError):
    """A value or a body the compiled codec does not handle exactly as fastavro: use fastavro."""


# --- schema -> kind ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kind:
    """What one field is: ``tag`` plus the enum symbols, the nullable branch or the map values."""

    tag: str  # string bytes int long double timestamp enum nullable map
    symbols: tuple[str, ...] = ()
    null_index: int = 0  # nullable: the position of "null" in the union
    inner: str = ""  # nullable: the other branch; map: the values' type


_PLAIN: Final = frozenset({"string", "bytes", "int", "long", "double"})
_NULLABLE: Final = frozenset({"string", "double", "bytes"})
_MAP_VALUES: Final = frozenset({"string", "double"})


def kind_of(field: str, avro_type: Any) -> Kind:
    if isinstance(avro_type, str):
        if avro_type in _PLAIN:
            return Kind(avro_type)
    elif isinstance(avro_type, list):
        if len(avro_type) == 2 and "null" in avro_type:
            other = avro_type[1 - avro_type.index("null")]
            if isinstance(other, str) and other in _NULLABLE:
                return Kind("nullable", null_index=avro_type.index("null"), inner=other)
    elif isinstance(avro_type, dict):
        keys = set(avro_type)
        if (
            avro_type.get("type") == "long"
            and avro_type.get("logicalType") == "timestamp-micros"
            and keys == {"type", "logicalType"}
        ):
            return Kind("timestamp")
        if avro_type.get("type") == "enum":  # a default only matters when resolving against another schema
            symbols = avro_type.get("symbols")
            if (
                isinstance(symbols, list)
                and symbols
                and all(isinstance(s, str) for s in symbols)
                and len(set(symbols)) == len(symbols)
            ):
                return Kind("enum", symbols=tuple(symbols))
        if avro_type.get("type") == "map" and keys == {"type", "values"} and avro_type.get("values") in _MAP_VALUES:
            return Kind("map", inner=avro_type["values"])
    raise Unsupported(f"field {field!r}: type {avro_type!r} is not compiled")


# --- what both halves use --------------------------------------------------------------------


def varint(n: int) -> bytes:
    """Zigzag varint of a long, as fastavro writes it (refuses ints outside 64 bits)."""
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise Refused(f"{n} does not fit in an Avro long")
    z = (n << 1) ^ (n >> 63)
    if z < 0x80:
        return ONE_BYTE[z]
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
