"""Decode many Avro bodies of one record schema at once, straight into Arrow columns.

``decode_columns(schema, bodies)`` walks the fields in schema order for all bodies
together with numpy (zig-zag varints, doubles, strings, nullable unions, enums,
maps, timestamp-micros), so the cost per record is a few numpy operations spread
over the batch instead of a Python dict and a dataclass per record.

Maps of doubles whose bytes equal another row's except for the 8-byte values (the
live feature maps: same names, same order in every event) are read as one
``[n, bytes]`` block compared with that row (``_same_shape``), instead of one
numpy step per entry; the others take the per-entry path.

The fields read for every row pass ``ALL`` (a full slice) instead of an index array,
so positions and flags are read and updated in place rather than gathered and
scattered for each field; strings all of one length (event ids) are copied as one
``[n, length]`` block. Same columns; ``EventCodec.decode_batch`` of the 200k bench
events, alternated in one process: 124-145 ms (min-median of 20) instead of 157-178 ms.

Against fastavro's reader on the same batches (``bench/bench_replay.py --decoder
fastavro``: each record read with ``schemaless_reader``, schema parsed once, into a dict,
the dicts into Arrow arrays, then the same column-wise rules and fallback), it earns its
place many times over. 200k bench events (2026-12-07, shared 2-core machine, 3 alternated
pairs of runs, tansu on memory storage): replay 1.23-2.01 s against 7.04-8.56 s, of which
decoding 0.62-1.09 s against 6.38-7.99 s (0.08-0.17 of fastavro's time). Offline, decoding
and making the warehouse rows of the same 200k in batches of 50k: 0.26-0.34 s against
5.8-7.0 s (3 alternated rounds; 0.045 best against best), same rows and dead letters.

It is a fast path, never the authority: a row is marked ``ok`` only when it was
decoded exactly (every byte of its body consumed, varints of at most 9 bytes,
valid union/enum indexes, UTF-8 strings, distinct map keys, timestamps a Python
datetime can hold). Every other row must go through ``EventCodec.decode``, which
decides whether it is an event and why not. Schemas using types outside that
subset raise ``Unsupported`` before reading anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from schemas.rules import EPOCH, LATEST_MICROS, MICROSECOND

_PAD: Final = 16  # zero bytes after the last body, so a 10-byte varint window never reads outside
_WINDOW: Final = np.arange(10, dtype=np.int64)
_SHIFTS: Final = (7 * np.arange(10)).astype(np.uint64)
_MIN_MICROS: Final = (datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // MICROSECOND  # what a datetime can hold
_INT32: Final = (-(2**31), 2**31 - 1)
MAX_MAP_ENTRIES: Final = 4096  # larger maps are left to the exact decoder (one numpy step per entry here)
ALL: Final = slice(None)  # every row of a cursor: reads and writes its arrays in place instead of gathering them


Rows = np.ndarray | slice  # an index array into a cursor's rows, or ALL


class Unsupported(ValueError):
    """The schema uses an Avro type this decoder does not handle."""


@dataclass(frozen=True, slots=True)
class Columns:
    """One Arrow array per field (length n) and which rows were decoded exactly."""

    arrays: dict[str, pa.Array]
    ok: np.ndarray  # bool[n]


@dataclass(frozen=True, slots=True)
class Joined:
    """Bodies laid end to end in one zero-padded buffer, and where each starts and ends.

    Join a batch once (``Joined.of``); ``decode_columns_at`` then decodes any subset of
    it without copying bodies again.
    """

    buf: npt.NDArray[np.uint8]  # [total + _PAD]
    starts: npt.NDArray[np.int64]  # [n]
    ends: npt.NDArray[np.int64]  # [n]

    @staticmethod
    def of(bodies: Sequence[bytes | None]) -> Joined:
        """``bodies`` joined (a None counts as empty)."""
        try:  # typed as all bytes: a None raises TypeError, handled below (cheaper than looking for one first)
            present = cast("Sequence[bytes]", bodies)
            lengths = np.fromiter(map(len, present), np.int64, len(bodies))
            joined = b"".join([*present, bytes(_PAD)])  # one copy, padding included
        except TypeError:  # None among them
            lengths = np.fromiter((0 if b is None else len(b) for b in bodies), np.int64, len(bodies))
            joined = b"".join([*(b or b"" for b in bodies), bytes(_PAD)])
        ends = np.cumsum(lengths)
        return Joined(np.frombuffer(joined, np.uint8), ends - lengths, ends)

    def __len__(self) -> int:
        return len(self.starts)


class _Cursor:
    """Read positions of some bodies of a ``Joined`` buffer."""

    def __init__(self, joined: Joined, rows: np.ndarray, skip: int) -> None:
        self.end = joined.ends[rows]
        self.pos = joined.starts[rows] + skip
        if (self.pos > self.end).any():
            raise ValueError(f"every body needs at least {skip} bytes before its Avro data")
        self.limit = len(joined.buf) - _PAD
        self.buf = joined.buf
        self.windows = np.lib.stride_tricks.sliding_window_view(joined.buf, len(_WINDOW))  # row i: the 10 bytes from i
        self.ok = np.ones(len(rows), bool)

    def at(self, rows: Rows) -> np.ndarray:
        """``rows`` as an index array."""
        return np.arange(len(self.pos)) if isinstance(rows, slice) else rows

    def _advance(self, rows: Rows, new_pos: np.ndarray) -> None:
        self.ok[rows] &= new_pos <= self.end[rows]
        self.pos[rows] = np.minimum(new_pos, self.limit)  # a bad length cannot send a row past the buffer

    def varint(self, rows: Rows) -> np.ndarray:
        """Zig-zag longs (int64) at each row's position; rows with varints over 9 bytes are marked bad."""
        pos: npt.NDArray[np.int64] = self.pos[rows]
        first = self.buf[pos]
        if (first < 0x80).all():  # one-byte varints: lengths, indexes, small numbers
            self._advance(rows, pos + 1)
            raw = first.astype(np.int64)
            return (raw >> 1) ^ -(raw & 1)
        window = self.windows[pos]
        last = window < 0x80
        length = last.argmax(axis=1) + 1
        self.ok[rows] &= last[:, :9].any(axis=1)
        raw = np.zeros(len(pos), np.uint64)
        for k in range(int(length.max())):
            part = (window[:, k] & 0x7F).astype(np.uint64) << _SHIFTS[k]
            raw |= np.where(k < length, part, np.uint64(0))
        self._advance(rows, pos + length)
        return (raw >> np.uint64(1)).astype(np.int64) ^ -(raw & np.uint64(1)).astype(np.int64)

    def fixed(self, rows: Rows, dtype: np.dtype) -> np.ndarray:
        pos = self.pos[rows]
        size = np.dtype(dtype).itemsize
        values = self.windows[pos, :size].view(dtype).reshape(-1)  # fancy indexing copies: contiguous rows
        self._advance(rows, pos + size)
        return values

    def span(self, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
        """(start, length) of the length-prefixed bytes at each row; bad rows get length 0."""
        length = self.varint(rows)
        start = self.pos[rows].copy() if rows is ALL else self.pos[rows]  # a view would move with the cursor
        self.ok[rows] &= length >= 0
        length = np.where(self.ok[rows], length, 0)
        self._advance(rows, start + length)
        return start, np.where(self.ok[rows], length, 0)

    def _spans(
        self, start: npt.NDArray[np.int64], length: npt.NDArray[np.int64], offsets: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.uint8]:
        """The bytes of every (start, length) span, end to end (``offsets``: their cumulative lengths).

        Spans all of one length (ids) are copied as one [n, length] block (20k uuids: ~0.2 ms
        instead of ~1 ms); others through an index of every byte.
        """
        width = int(length[0]) if len(length) else 0
        if width and (length == width).all() and int(start.max()) + width <= len(self.buf):
            return np.lib.stride_tricks.sliding_window_view(self.buf, width)[start].reshape(
                -1
            )  # one copy, C-contiguous
        every_byte: npt.NDArray[np.int64] = np.repeat(start - offsets[:-1], length) + np.arange(offsets[-1])
        return self.buf[every_byte]

    def binary(self, start: np.ndarray, length: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
        offsets = np.zeros(len(start) + 1, np.int64)
        np.cumsum(length, out=offsets[1:])
        data = self._spans(start, length, offsets)
        bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
        nulls = 0 if valid is None else int(len(valid) - valid.sum())
        small = offsets[-1] < 2**31
        arrow_type, arrow_offsets = (pa.binary(), offsets.astype(np.int32)) if small else (pa.large_binary(), offsets)
        return pa.Array.from_buffers(
            arrow_type, len(start), [bitmap, pa.py_buffer(arrow_offsets), pa.py_buffer(data)], null_count=nulls
        )


def _utf8(cursor: _Cursor, rows: Rows, array: pa.Array) -> pa.Array:
    """``array`` as strings; rows whose bytes are not UTF-8 are marked bad (and emptied)."""
    try:
        return array.cast(pa.string() if array.type == pa.binary() else pa.large_string())
    except pa.ArrowInvalid:
        values = array.to_pylist()
        rows = cursor.at(rows)
        for i, value in enumerate(values):
            if value is not None:
                try:
                    values[i] = value.decode("utf-8")
                except UnicodeDecodeError:
                    cursor.ok[rows[i]] = False
                    values[i] = ""
        return pa.array(values, pa.string())


def _is(avro_type: Any, name: str) -> bool:
    return avro_type == name or (
        isinstance(avro_type, dict) and avro_type.get("type") == name and "logicalType" not in avro_type
    )


def _read(cursor: _Cursor, rows: Rows, avro_type: Any) -> pa.Array:
    """Read one value of ``avro_type`` for ``rows`` (an index array, or ``ALL``) and return it as Arrow."""
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        if len(avro_type) != 2 or len(branches) != 1:
            raise Unsupported(f"union {avro_type}")
        null_index = avro_type.index("null")
        index = cursor.varint(rows)
        cursor.ok[rows] &= (index == 0) | (index == 1)
        present = index == 1 - null_index
        values = _read(cursor, np.flatnonzero(present) if isinstance(rows, slice) else rows[present], branches[0])
        positions = np.full(len(present), -1, np.int64)
        positions[present] = np.arange(int(present.sum()))
        return values.take(pa.array(positions, mask=~present))
    if (
        isinstance(avro_type, dict)
        and avro_type.get("logicalType") == "timestamp-micros"
        and avro_type.get("type") == "long"
    ):
        micros = cursor.varint(rows)
        cursor.ok[rows] &= (micros >= _MIN_MICROS) & (micros <= LATEST_MICROS)
        return pa.array(micros, pa.timestamp("us"))
    if isinstance(avro_type, dict) and "logicalType" in avro_type:
        raise Unsupported(f"logical type {avro_type['logicalType']}")
    if _is(avro_type, "enum"):
        symbols = avro_type["symbols"]
        index = cursor.varint(rows)
        good = (index >= 0) & (index < len(symbols))
        cursor.ok[rows] &= good
        return pa.array(symbols, pa.string()).take(pa.array(np.where(good, index, 0)))
    if _is(avro_type, "map"):
        return _map(cursor, cursor.at(rows), avro_type["values"])
    if _is(avro_type, "string") or _is(avro_type, "bytes"):
        start, length = cursor.span(rows)
        array = cursor.binary(start, length)
        return _utf8(cursor, rows, array) if _is(avro_type, "string") else array.cast(pa.binary())
    if _is(avro_type, "double"):
        return pa.array(cursor.fixed(rows, np.dtype("<f8")), pa.float64())
    if _is(avro_type, "float"):
        return pa.array(cursor.fixed(rows, np.dtype("<f4")), pa.float32())
    if _is(avro_type, "long"):
        return pa.array(cursor.varint(rows), pa.int64())
    if _is(avro_type, "int"):
        values = cursor.varint(rows)
        good = (values >= _INT32[0]) & (values <= _INT32[1])
        cursor.ok[rows] &= good
        return pa.array(np.where(good, values, 0).astype(np.int32), pa.int32())
    raise Unsupported(f"type {avro_type!r}")


def _map(cursor: _Cursor, rows: np.ndarray, value_type: Any) -> pa.Array:
    """Avro map blocks as an Arrow MapArray: rows shaped like an earlier row at once, the rest entry by entry."""
    if not _is(value_type, "double"):
        return _map_entries(cursor, rows, value_type)
    parts: list[pa.Array] = []
    done: list[np.ndarray] = []
    rest = np.arange(len(rows))
    tried = np.zeros(len(rows), bool)  # rows whose shape no other row shared
    for _ in range(_MAX_SHAPES):
        ok = rest[cursor.ok[rows[rest]]]
        untried = ok[~tried[ok]]
        if len(ok) < 2 or not len(untried):
            break
        shape = _template(cursor, int(rows[untried[0]]))
        if shape is None or len(ok) * len(shape.template) >= 2**31:  # keys must fit 32-bit string offsets
            tried[untried[0]] = True
            continue
        matched, values = _same_shape(cursor, rows[ok], shape)
        if matched.sum() < 2:  # only the template itself
            tried[untried[0]] = True
            continue
        cursor.pos[rows[ok[matched]]] += len(shape.template)
        parts.append(_fixed_maps(shape.keys, values))
        done.append(ok[matched])
        rest = np.setdiff1d(rest, ok[matched], assume_unique=True)
    if not done:
        return _map_entries(cursor, rows, value_type)
    if len(parts) == 1 and not len(rest):
        return parts[0]  # every row, in order
    if len(rest):
        parts.append(_map_entries(cursor, rows[rest], value_type))
        done.append(rest)
    order = np.argsort(np.concatenate(done), kind="stable")
    return pa.concat_arrays(parts).take(pa.array(order))


_MAX_SHAPES: Final = 4  # map shapes tried per column and batch; rows of no shape take the per-entry path
_SHAPE_CHUNK_BYTES: Final = 1024 * 1024  # one [rows, bytes] comparison block: small enough to stay in cache


@dataclass(frozen=True, slots=True)
class _Shape:
    """One row's map bytes, where its 8-byte values sit, and its keys."""

    template: np.ndarray  # uint8[m]
    slots: np.ndarray  # int64[k]: offset of each value in the template
    keys: list[str]


def _template(cursor: _Cursor, row: int) -> _Shape | None:
    """The map at ``row``'s position, read exactly in Python; None if it is not a valid, distinct-keyed map."""
    buf, start, end = cursor.buf, int(cursor.pos[row]), int(cursor.end[row])
    at = start
    keys: list[str] = []
    slots: list[int] = []

    def varint() -> int | None:
        nonlocal at
        raw = shift = 0
        for _ in range(9):
            if at >= end:
                return None
            byte = int(buf[at])
            at += 1
            raw |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return (raw >> 1) ^ -(raw & 1)
        return None

    while True:
        count = varint()
        if count is None:
            return None
        if count == 0:
            break
        if count < 0:
            count = -count
            if varint() is None:
                return None
        for _ in range(count):
            length = varint()
            if length is None or length < 0 or at + length + 8 > end or len(keys) == MAX_MAP_ENTRIES:
                return None
            try:
                keys.append(bytes(buf[at : at + length]).decode("utf-8"))
            except UnicodeDecodeError:
                return None
            at += length
            slots.append(at - start)
            at += 8
    if len(set(keys)) != len(keys):
        return None
    return _Shape(buf[start:at].copy(), np.asarray(slots, np.int64), keys)


def _same_shape(cursor: _Cursor, rows: np.ndarray, shape: _Shape) -> tuple[np.ndarray, np.ndarray]:
    """Which ``rows`` hold, at their position, a map whose bytes equal ``shape``'s but for the values; and those values.

    Equal bytes outside the values mean the same blocks, keys and length, so such a row
    reads exactly as the template did (values are fixed-width and never change the layout).
    Each row's bytes are compared as 8-byte words under a mask that hides the values
    (and the few bytes read past the map to fill the last word), and the values are read
    as unaligned doubles at their slots, in blocks of about ``_SHAPE_CHUNK_BYTES`` that stay
    in cache: 20k bench feature maps (80 entries) took ~8 ms instead of ~21 ms byte by byte.
    The values come out row-major: numpy gathers ``doubles[:, slots]`` column-major, and
    turning the joined [n, k] result around afterwards took ~18-30 ms (out of cache) of
    the ~2.5 ms it takes block by block.
    """
    m, k = len(shape.template), len(shape.keys)
    width = -(-m // 8) * 8  # whole words; the buffer's zero padding (>= 16 bytes) covers the excess
    keep = np.zeros(width, np.uint8)
    keep[:m] = 0xFF
    keep[(shape.slots[:, None] + np.arange(8)).reshape(-1)] = 0
    mask = keep.view("<u8")
    template = np.zeros(width, np.uint8)
    template[:m] = shape.template
    expected = template.view("<u8") & mask
    windows = np.lib.stride_tricks.sliding_window_view(cursor.buf, width)
    pos = cursor.pos[rows]
    candidates = np.flatnonzero(pos + m <= cursor.end[rows])
    matched = np.zeros(len(rows), bool)
    values = []
    step = max(1, _SHAPE_CHUNK_BYTES // width)
    for lo in range(0, len(candidates), step):
        part = candidates[lo : lo + step]
        block = windows[pos[part]]  # one copy of `width` bytes per row, C-contiguous
        same = ((block.view("<u8") & mask) == expected).all(axis=1)
        matched[part[same]] = True
        chosen = block if same.all() else block[same]
        doubles = np.ndarray(
            (len(chosen), width - 7), "<f8", buffer=chosen, strides=(width, 1)
        )  # a double at every byte
        values.append(np.ascontiguousarray(doubles[:, shape.slots]))  # row-major while the block is in cache, see below
    return matched, np.concatenate(values) if values else np.empty((0, k), np.float64)


def _fixed_maps(keys: list[str], values: np.ndarray) -> pa.Array:
    """A MapArray of ``values`` ([n, k]) under the same ``keys`` in every row."""
    n, k = values.shape
    encoded = [key.encode("utf-8") for key in keys]
    ends = np.cumsum([len(key) for key in encoded], dtype=np.int64)
    width = int(ends[-1]) if k else 0
    # the caller keeps n * width below 2**31: the string offsets are made as int32 at once, in place
    key_offsets = np.empty(n * k + 1, np.int32)
    key_offsets[0] = 0
    np.add(
        np.arange(n, dtype=np.int32)[:, None] * np.int32(width),
        ends.astype(np.int32)[None, :],
        out=key_offsets[1:].reshape(n, k),
    )
    key_array = pa.Array.from_buffers(
        pa.string(), n * k, [None, pa.py_buffer(key_offsets), pa.py_buffer(b"".join(encoded) * n)]
    )
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * k)
    return pa.MapArray.from_arrays(offsets, key_array, pa.array(values.reshape(-1), pa.float64()))


def _map_entries(cursor: _Cursor, rows: np.ndarray, value_type: Any) -> pa.Array:
    """Avro map blocks (counts, negative counts with byte sizes, 0 to end) as an Arrow MapArray, one entry at a time."""
    remaining = np.zeros(len(rows), np.int64)
    open_ = np.ones(len(rows), bool)
    entry_rows: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    values: list[pa.Array] = []
    while True:
        need_block = open_ & (remaining == 0) & cursor.ok[rows]
        open_ &= cursor.ok[rows]
        if need_block.any():
            at = np.flatnonzero(need_block)
            count = cursor.varint(rows[at])
            negative = count < 0
            if negative.any():
                cursor.varint(rows[at[negative]])  # block size in bytes, not needed
            remaining[at] = np.abs(count)
            open_[at[count == 0]] = False
        active = np.flatnonzero(open_ & (remaining > 0) & cursor.ok[rows])
        if len(active) == 0:
            break
        if len(entry_rows) == MAX_MAP_ENTRIES:
            cursor.ok[rows[active]] = False
            break
        start, length = cursor.span(rows[active])
        entry_rows.append(active)
        starts.append(start)
        lengths.append(length)
        values.append(_read(cursor, rows[active], value_type))
        remaining[active] -= 1
    if entry_rows:
        owner = np.concatenate(entry_rows)
        order = np.argsort(owner, kind="stable")  # row-major, entries in wire order
        owner = owner[order]
        keys = _utf8(cursor, rows[owner], cursor.binary(np.concatenate(starts)[order], np.concatenate(lengths)[order]))
        items = pa.concat_arrays(values).take(pa.array(order))
    else:
        owner = np.zeros(0, np.int64)
        keys, items = pa.array([], pa.string()), pa.array([], _arrow_value_type(value_type))
    counts = np.bincount(owner, minlength=len(rows))
    _mark_duplicate_keys(cursor, rows, owner, keys)
    offsets = np.zeros(len(rows) + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.MapArray.from_arrays(pa.array(offsets), keys, items)


def _arrow_value_type(value_type: Any) -> pa.DataType:
    return {
        "double": pa.float64(),
        "string": pa.string(),
        "long": pa.int64(),
        "float": pa.float32(),
        "int": pa.int32(),
    }[value_type]


def _mark_duplicate_keys(cursor: _Cursor, rows: np.ndarray, owner: np.ndarray, keys: pa.Array) -> None:
    """Rows repeating a key: a dict keeps the last value, so let the exact decoder handle them."""
    if len(owner) == 0:
        return
    codes = keys.dictionary_encode().indices.to_numpy(zero_copy_only=False).astype(np.int64)
    width = int(codes.max()) + 1
    if len(rows) * width <= 50_000_000:
        repeated = np.bincount(owner * width + codes, minlength=len(rows) * width).reshape(len(rows), width) > 1
        cursor.ok[rows] &= ~repeated.any(axis=1)
        return
    pair = owner * width + codes
    order = np.sort(pair)
    dup = order[1:][order[1:] == order[:-1]] // width
    cursor.ok[rows[np.unique(dup)]] = False


def decode_columns(schema: dict[str, Any], bodies: Sequence[bytes], *, skip: int = 0) -> Columns:
    """Decode ``bodies`` (Avro binary of the record ``schema``, as JSON) into one Arrow array per field.

    Each body's Avro data starts after ``skip`` bytes (5 for a Confluent-framed message).
    """
    return decode_columns_at(schema, Joined.of(bodies), np.arange(len(bodies)), skip=skip)


def decode_columns_at(schema: dict[str, Any], joined: Joined, rows: np.ndarray, *, skip: int = 0) -> Columns:
    """``decode_columns`` of the bodies ``rows`` (an index array) of ``joined``; row i of the result is ``rows[i]``."""
    if schema.get("type") != "record":
        raise Unsupported("only record schemas are decoded in columns")
    cursor = _Cursor(joined, np.asarray(rows, np.int64), skip)
    arrays = {f["name"]: _read(cursor, ALL, f["type"]) for f in schema["fields"]}
    ok = cursor.ok & (cursor.pos == cursor.end)  # trailing bytes: not what this schema wrote
    return Columns(arrays, ok)
