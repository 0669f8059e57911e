"""Named feature values stored as a value list plus a shared, content-addressed name list.

A ``FeaturesComputed`` event carries a map of 60+ named doubles. The warehouse does
not store it as a DuckDB MAP (inserting maps is slow: DuckDB validates every key of
every map) but as two parts:

- per event, ``feature_values DOUBLE[]``: the values in the map's own (wire) order,
  and ``feature_layout VARCHAR``: the id of the ordered list of its names;
- once per distinct name list, ``feature_layouts(layout, names VARCHAR[])``.

A layout is keyed by its names, not by ``feature_set``: the event schema does not
force every event of one set to carry the same names in the same order, and each
event must read back exactly as recorded. The id is a hash of the names
(``layout_id``), so it is the same in every batch and every replay; no lookup is
needed to write a row. Live events of one feature set share one layout, so the
table holds a handful of rows.

``split_maps`` turns an Arrow MapArray into those parts (vectorised: one numpy pass
per distinct map length; when every map repeats the first one's names, as live
feature maps do, one comparison of the key bytes instead); ``layout_matrix`` scatters stored rows into a float32
``[n, d]`` matrix for a chosen list of names.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

LAYOUT_COLUMN: Final = "feature_layout"
VALUES_COLUMN: Final = "feature_values"
LAYOUT_TYPE: Final = pa.string()
VALUES_TYPE: Final = pa.list_(pa.float64())
_COMPARE_BYTES: Final = 256 * 1024  # one block of rows compared at once in ``_shared_names``

Layouts = Mapping[str, tuple[str, ...]]


class LayoutError(ValueError):
    """Stored feature rows do not match their layouts."""


def layout_id(names: Sequence[str]) -> str:
    """The id of an ordered list of names: 16 hex digits of a BLAKE2b hash of its JSON form."""
    text = json.dumps(list(names), ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class SplitMaps:
    """One map column as a layout id per row, a value list per row, and the layouts used."""

    layout: pa.Array  # string[n], null where the map was null
    values: pa.Array  # list<double>[n], in each map's own order, null where the map was null
    layouts: dict[str, tuple[str, ...]]


def split_maps(maps: pa.Array | pa.ChunkedArray) -> SplitMaps:
    """Split a ``map<string, double>`` array into layout ids, value lists and the layouts they name."""
    if isinstance(maps, pa.ChunkedArray):
        maps = maps.combine_chunks() if maps.num_chunks else pa.array([], maps.type)
    n = len(maps)
    offsets = maps.offsets.to_numpy().astype(np.int64)  # a slice's offsets are not rebased: rebase them
    base = int(offsets[0]) if n else 0
    offsets -= base
    keys = maps.keys.slice(base, int(offsets[-1]) if n else 0)
    items = maps.items.slice(base, int(offsets[-1]) if n else 0)
    valid = maps.is_valid().to_numpy(zero_copy_only=False) if maps.null_count else np.ones(n, bool)
    starts, lengths = offsets[:-1], np.diff(offsets)
    same_length = n > 0 and valid.all() and (lengths == lengths[0]).all()
    if same_length and (names := _shared_names(keys, n, int(lengths[0]))) is not None:  # the live case: one layout
        key = layout_id(names)
        values = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), items.cast(pa.float64()))
        return SplitMaps(
            layout=pa.array([key], LAYOUT_TYPE).take(pa.array(np.zeros(n, np.int64))),
            values=values,
            layouts={key: names},
        )
    encoded = pc.dictionary_encode(keys) if len(keys) else None
    codes = (
        encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        if encoded is not None
        else np.zeros(0, np.int64)
    )
    dictionary = encoded.dictionary.to_pylist() if encoded is not None else []
    row_layout = np.full(n, -1, np.int64)
    ids: list[str] = []
    layouts: dict[str, tuple[str, ...]] = {}
    for length in np.unique(lengths[valid]).tolist():
        rows = np.flatnonzero(valid & (lengths == length))
        matrix = codes[starts[rows, None] + np.arange(length)] if length else np.zeros((len(rows), 0), np.int64)
        if (matrix == matrix[0]).all():  # the usual case: one feature set, one order
            unique, inverse = matrix[:1], np.zeros(len(rows), np.int64)
        else:
            unique, inverse = np.unique(matrix, axis=0, return_inverse=True)
        for codes_row in unique:
            names = tuple(dictionary[c] for c in codes_row.tolist())
            key = layout_id(names)
            layouts[key] = names
            ids.append(key)
        row_layout[rows] = inverse.reshape(-1) + (len(ids) - len(unique))
    layout = (
        pa.array(ids, LAYOUT_TYPE).take(pa.array(row_layout, mask=row_layout < 0)) if ids else pa.nulls(n, LAYOUT_TYPE)
    )
    mask = None if valid.all() else pa.array(~valid)
    values = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), items.cast(pa.float64()), mask=mask)
    return SplitMaps(layout=layout, values=values, layouts=layouts)


def _shared_names(keys: pa.Array, n: int, k: int) -> tuple[str, ...] | None:
    """The first map's names if each of ``n`` maps of ``k`` entries holds exactly those names in that order, else None.

    Compares bytes and offsets with numpy instead of dictionary-encoding every key:
    ``keys`` (row-major, ``n * k`` of them) must be the first ``k`` repeated ``n`` times.
    Rows are compared in blocks of about ``_COMPARE_BYTES`` that stay in cache, with
    the offsets as they are stored (int32): 20k maps of 80 keys took ~5 ms instead of
    ~14 ms over the whole arrays at once.
    """
    if len(keys) != n * k:
        return None
    if k == 0:
        return ()
    if keys.null_count or keys.type != pa.string():
        return None
    offsets = np.frombuffer(keys.buffers()[1], np.int32, len(keys) + 1, keys.offset * 4)
    data = np.frombuffer(keys.buffers()[2], np.uint8)
    base = int(offsets[0])
    first = offsets[:k] - offsets[0]  # where the first map's keys start, from its own start
    width = int(offsets[k]) - base  # bytes of one map's keys
    if int(offsets[-1]) - base != n * width or base + n * width > len(data):
        return None
    starts = offsets[:-1].reshape(n, k)
    rows = data[base : base + n * width]
    template = rows[:width]
    step = max(1, _COMPARE_BYTES // max(width, 4 * k))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        shift = np.arange(lo, hi, dtype=np.int32)[:, None] * np.int32(width) + np.int32(
            base
        )  # below 2**31: int32 offsets
        if not np.array_equal(starts[lo:hi] - shift, np.broadcast_to(first, (hi - lo, k))):
            return None
        if width and not (rows[lo * width : hi * width].reshape(hi - lo, width) == template).all():
            return None
    return tuple(keys.slice(0, k).to_pylist())


def layout_matrix(
    layout: pa.Array | pa.ChunkedArray,
    values: pa.Array | pa.ChunkedArray,
    layouts: Layouts,
    names: Sequence[str] | None = None,
) -> tuple[tuple[str, ...], np.ndarray]:
    """Stored rows as float32 ``[n, d]`` in ``names`` order (default: sorted union of the rows' names).

    A name a row's layout lacks is NaN, as is every value of a row without a layout.
    Raises ``LayoutError`` if a row names an unknown layout or has another length than it.
    """
    layout = _one_chunk(layout, LAYOUT_TYPE)
    values = _one_chunk(values, VALUES_TYPE)
    n = len(layout)
    encoded = pc.dictionary_encode(layout)
    row_layout = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    used = encoded.dictionary.to_pylist()
    unknown = [key for key in used if key not in layouts]
    if unknown:
        raise LayoutError(f"feature rows reference unknown layouts {unknown[:3]}")
    if names is None:
        names = sorted(set().union(*(layouts[key] for key in used))) if used else []
    names = tuple(names)
    column_of = {name: j for j, name in enumerate(names)}
    offsets = values.offsets.to_numpy().astype(np.int64)
    starts, lengths = offsets[:-1], np.diff(offsets)
    base = int(offsets[0]) if n else 0  # a slice's offsets are not rebased; null rows may span values
    flat = pc.fill_null(values.values.slice(base, int(offsets[-1]) - base if n else 0), np.nan).to_numpy(
        zero_copy_only=False
    )
    starts = starts - base
    matrix = np.full((n, len(names)), np.nan, dtype=np.float32)
    for k, key in enumerate(used):
        rows = np.flatnonzero(row_layout == k)
        layout_names = layouts[key]
        if (lengths[rows] != len(layout_names)).any():
            raise LayoutError(f"feature rows of layout {key} do not all have its {len(layout_names)} values")
        columns = np.array([column_of.get(name, -1) for name in layout_names], np.int64)
        kept = np.flatnonzero(columns >= 0)
        if len(kept):
            matrix[rows[:, None], columns[kept][None, :]] = flat[starts[rows, None] + kept[None, :]]
    return names, matrix


def _one_chunk(array: pa.Array | pa.ChunkedArray, arrow_type: pa.DataType) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks else pa.array([], array.type)
    return array if array.type == arrow_type else array.cast(arrow_type)
