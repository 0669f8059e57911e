"""The ``decided`` table's value: the decision sent for a signal, the signal, and its closed trade.

A decided signal needs kept: its decision (sent again, never remade, when the signal
comes back), the signal as received (its entry fill opens the trade from it), where
the signal was read (a signal read again at that same position is the worker
re-processing input after a crash, not a repeat), and once its trade closed, the
exit fill's id and the ``TradeClosed`` sent (a redelivered exit gets it again):

    b"RDS2" | uint32 partition | int64 offset | uint32 n | decision (n bytes)
            | uint32 m | signal (m bytes) | uint32 k | exit event id (k bytes) | TradeClosed

The records are the Confluent-framed Avro records as sent and received; the last two
parts are empty while the trade is not closed. The retention index
(``agents.retention``) is rebuilt from the decisions' symbol and event time
(``retention_entries``). Values of the earlier formats still read: ``RDS1`` (decision
and signal) and the decision alone (a Confluent frame starting with byte 0); their
position is unknown.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, NamedTuple, Protocol

from agents.timestamps import to_micros

MAGIC: Final = b"RDS2"
MAGIC_V1: Final = b"RDS1"
_LEN: Final = struct.Struct("<I")
_POSITION: Final = struct.Struct("<Iq")


class DecidedCorrupt(ValueError):
    """A ``decided`` value that is no known format."""


class Decided(NamedTuple):
    decision: bytes
    signal: bytes | None  # None: written by a version that did not keep it
    partition: int | None  # where the signal was read; None: not known
    offset: int | None
    exit_event_id: str | None = None  # set once the trade closed
    closed: bytes | None = None  # the TradeClosed sent

    def at(self, partition: int, offset: int) -> bool:
        """The signal was read at ``partition``/``offset`` (False when the position is not known)."""
        return self.partition == partition and self.offset == offset


def pack(
    decision: bytes,
    signal: bytes,
    *,
    partition: int,
    offset: int,
    exit_event_id: str | None = None,
    closed: bytes | None = None,
) -> bytes:
    exit_id = (exit_event_id or "").encode()
    return b"".join(
        (
            MAGIC,
            _POSITION.pack(partition, offset),
            _LEN.pack(len(decision)),
            decision,
            _LEN.pack(len(signal)),
            signal,
            _LEN.pack(len(exit_id)),
            exit_id,
            closed or b"",
        )
    )


def with_closed(entry: Decided, exit_event_id: str, closed: bytes) -> bytes:
    """``entry`` packed again with its trade's exit."""
    if entry.signal is None or entry.partition is None or entry.offset is None:
        raise DecidedCorrupt("a decided value of an earlier format cannot record a closed trade")
    return pack(
        entry.decision,
        entry.signal,
        partition=entry.partition,
        offset=entry.offset,
        exit_event_id=exit_event_id,
        closed=closed,
    )


def unpack(raw: bytes) -> Decided:
    """The parts of a ``decided`` value (raises ``DecidedCorrupt``)."""
    magic = raw[:4]
    if magic == MAGIC:
        try:
            partition, offset = _POSITION.unpack_from(raw, 4)
            pos = 4 + _POSITION.size
            decision, pos = _part(raw, pos, "decision")
            signal, pos = _part(raw, pos, "signal")
            exit_id, pos = _part(raw, pos, "exit event id")
        except struct.error as exc:
            raise DecidedCorrupt(f"decided value of {len(raw)} bytes is truncated") from exc
        return Decided(decision, signal, partition, offset, exit_id.decode() or None, raw[pos:] or None)
    if magic == MAGIC_V1:
        if len(raw) < 8:
            raise DecidedCorrupt(f"decided value of {len(raw)} bytes is truncated")
        (n,) = _LEN.unpack_from(raw, 4)
        if 8 + n > len(raw):
            raise DecidedCorrupt(f"decided value says its decision has {n} bytes, only {len(raw) - 8} follow")
        return Decided(raw[8 : 8 + n], raw[8 + n :], None, None)
    if raw[:1] == b"\x00":  # the decision alone, as first written
        return Decided(raw, None, None, None)
    raise DecidedCorrupt(f"decided value starts with {magic!r}: neither {MAGIC!r}, {MAGIC_V1!r} nor a Confluent frame")


def _part(raw: bytes, pos: int, name: str) -> tuple[bytes, int]:
    (n,) = _LEN.unpack_from(raw, pos)
    end = pos + 4 + n
    if end > len(raw):
        raise DecidedCorrupt(f"decided value says its {name} has {n} bytes, only {len(raw) - pos - 4} follow")
    return raw[pos + 4 : end], end


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
            _, head = codec.decode_head(unpack(raw).decision, ("ts_event", "symbol"))
            ts_us, symbol = to_micros(head["ts_event"]), head["symbol"]  # decode_head gives datetimes, as decode
        except Exception:  # a value the worker cannot read is left alone, as the signal path leaves it
            skipped.append(key)
            continue
        yield symbol, ts_us, key, partition
