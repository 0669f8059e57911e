"""The ``decided`` table's value: the decision sent for a signal, and the signal itself.

A decided signal needs two things kept: its decision (sent again, never remade,
when the signal comes back) and the signal as received (the fills of its trade
are checked against it). They used to be two table entries, two changelog
records per signal; now one:

    b"RDS1" | uint32 length of the decision | decision bytes | signal bytes

Both parts are the Confluent-framed Avro records as sent and received. The
retention index (``agents.retention``) is rebuilt from the decisions' symbol and
event time (``retention_entries``). A value
written before this format (the decision alone, a Confluent frame starting with
byte 0) still reads: its signal is unknown (``None``), and the ``trades`` table
holds it as it did then.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, Protocol

from agents.timestamps import to_micros

MAGIC: Final = b"RDS1"
_LEN: Final = struct.Struct("<I")


class DecidedCorrupt(ValueError):
    """A ``decided`` value that is neither format."""


def pack(decision: bytes, signal: bytes) -> bytes:
    return b"".join((MAGIC, _LEN.pack(len(decision)), decision, signal))


def unpack(raw: bytes) -> tuple[bytes, bytes | None]:
    """``(decision, signal)``; ``signal`` is ``None`` for a value of the old format."""
    if raw[:4] != MAGIC:
        if raw[:1] == b"\x00":  # the decision alone, as first written
            return raw, None
        raise DecidedCorrupt(f"decided value starts with {raw[:4]!r}: neither {MAGIC!r} nor a Confluent frame")
    if len(raw) < 8:
        raise DecidedCorrupt(f"decided value of {len(raw)} bytes is truncated")
    (n,) = _LEN.unpack_from(raw, 4)
    if 8 + n > len(raw):
        raise DecidedCorrupt(f"decided value says its decision has {n} bytes, only {len(raw) - 8} follow")
    return raw[8 : 8 + n], raw[8 + n :]


class _HeadDecoder(Protocol):  # the one method of ``schemas.codec.EventCodec`` used here
    def decode_head(self, data: bytes, names: tuple[str, ...]) -> tuple[type, dict[str, Any]]: ...


def retention_entries(
    items: Iterable[tuple[bytes, bytes]],
    partition_of: Callable[[bytes], int | None],
    codec: _HeadDecoder,
    *,
    skipped: list[bytes],
) -> Iterator[tuple[str, int, bytes, int]]:
    """``(symbol, ts_us, key, partition)`` of each ``decided`` entry, for ``DecidedRetention.rebuild``.

    The symbol and time are the stored decision's (a ``SizeDecided`` carries its signal's
    ``ts_event``). An entry whose partition is unknown or whose value cannot be read is
    appended to ``skipped`` instead: it is kept, never expired.
    """
    for key, raw in items:
        partition = partition_of(key)
        try:
            if partition is None:
                raise DecidedCorrupt("no partition recorded")
            _, head = codec.decode_head(unpack(raw)[0], ("ts_event", "symbol"))
            ts_us, symbol = to_micros(head["ts_event"]), head["symbol"]  # decode_head gives datetimes, as decode
        except Exception:  # a value the worker cannot read is left alone, as the signal path leaves it
            skipped.append(key)
            continue
        yield symbol, ts_us, key, partition
