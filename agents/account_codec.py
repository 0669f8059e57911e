"""The packed byte form of ``AccountState``: ids and numbers as flat arrays, not JSON.

Layout (little-endian): magic ``RAS2``, then ``<III`` = open count, closed
count, byte length of the ids; the ids of the open then the closed trades as
UTF-8 joined by NUL; open timestamps (int64), open multipliers (float64),
closed exit timestamps (int64), closed P&L (float64). float64 and int64 hold
exactly what the JSON form held, so a value survives either form unchanged.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

import numpy as np

MAGIC: Final = b"RAS2"
_HEADER: Final = struct.Struct("<4sIII")
_SEP: Final = "\x00"


def is_packed(raw: bytes) -> bool:
    return raw[:4] == MAGIC


def pack(
    open_ids: Sequence[str],
    open_ts: Sequence[int],
    open_mult: Sequence[float],
    closed_ids: Sequence[str],
    closed_ts: Sequence[int],
    closed_pnl: Sequence[float],
) -> bytes | None:
    """The packed bytes, or ``None`` when an id contains NUL or is not encodable (the caller then writes JSON)."""
    ids = [*open_ids, *closed_ids]
    text = _SEP.join(ids)
    if text.count(_SEP) != max(len(ids) - 1, 0):  # an id holds NUL itself
        return None
    try:
        blob = text.encode()
    except UnicodeEncodeError:
        return None
    arrays = (
        np.array(open_ts, dtype="<i8"),
        np.array(open_mult, dtype="<f8"),
        np.array(closed_ts, dtype="<i8"),
        np.array(closed_pnl, dtype="<f8"),
    )
    head = _HEADER.pack(MAGIC, len(open_ids), len(closed_ids), len(blob))
    return b"".join((head, blob, *(a.tobytes() for a in arrays)))


def unpack(raw: bytes) -> tuple[list[str], list[int], list[float], list[str], list[int], list[float]]:
    """The six columns of ``pack``; raises ``ValueError`` for bytes that are not a whole packed account."""
    try:
        magic, n_open, n_closed, n_blob = _HEADER.unpack_from(raw, 0)
    except struct.error as exc:
        raise ValueError(f"truncated header: {exc}") from exc
    if magic != MAGIC:
        raise ValueError(f"not a packed account (magic {magic!r}, expected {MAGIC!r})")
    pos = _HEADER.size
    expected = pos + n_blob + 16 * (n_open + n_closed)
    if len(raw) != expected:
        raise ValueError(f"expected {expected} bytes for {n_open} open and {n_closed} closed trades, got {len(raw)}")
    try:
        text = raw[pos : pos + n_blob].decode()
    except UnicodeDecodeError as exc:
        raise ValueError(f"signal ids are not UTF-8: {exc}") from exc
    ids = text.split(_SEP) if n_open + n_closed else []
    if len(ids) != n_open + n_closed or (n_open + n_closed == 0 and n_blob):
        raise ValueError(f"{len(ids)} signal ids for {n_open + n_closed} trades")
    pos += n_blob
    columns = []
    for count, dtype in ((n_open, "<i8"), (n_open, "<f8"), (n_closed, "<i8"), (n_closed, "<f8")):
        columns.append(np.frombuffer(raw, dtype=dtype, count=count, offset=pos).tolist())
        pos += 8 * count
    o_ts, o_mult, c_ts, c_pnl = columns
    return ids[:n_open], o_ts, o_mult, ids[n_open:], c_ts, c_pnl
