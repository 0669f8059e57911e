"""Immutable rows (id, timestamp, value) ordered by time, that grow at the end without copying.

An account keeps up to ~1,000 open decisions and adds one at every signal,
almost always after all the others. Copying three 1,000-long tuples for that
(and touching every element's reference count) was the largest single cost of a
decision. ``Rows`` is a view ``[start, end)`` of three parallel lists that
several ``Rows`` share:

- a ``Rows`` never changes, and no ``Rows`` ever sees a list change inside its view;
- a ``Rows`` that ends where its lists end (the newest) appends a row to them in
  place: the row is past every view's end, so no other ``Rows`` sees it. Any other
  insertion (in the middle, or from an older ``Rows``) copies;
- dropping rows from the front only moves ``start``; when more than half of the
  lists lie before it, the live rows are copied to new lists (amortised O(1)).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Final

COMPACT_FROM: Final = 256  # dead rows before the view from which the lists are copied (when over half)


class Rows:
    """Rows ``[start, end)`` of parallel ``ids``/``ts``/``values`` lists, ``ts`` ascending."""

    __slots__ = ("_end", "_ids", "_start", "_ts", "_vals")

    def __init__(
        self, ids: list[str], ts: list[int], vals: list[float], start: int = 0, end: int | None = None
    ) -> None:
        if not (len(ids) == len(ts) == len(vals)):
            raise ValueError(f"column lengths differ: {len(ids)}, {len(ts)}, {len(vals)}")
        self._ids, self._ts, self._vals = ids, ts, vals
        self._start = start
        self._end = len(ids) if end is None else end

    def __len__(self) -> int:
        return self._end - self._start

    # whole columns, as tuples: O(n), for serialising and comparing
    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._ids[self._start : self._end])

    @property
    def ts(self) -> tuple[int, ...]:
        return tuple(self._ts[self._start : self._end])

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(self._vals[self._start : self._end])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rows):
            return NotImplemented
        s, e, os_, oe = self._start, self._end, other._start, other._end
        return (
            self._ts[s:e] == other._ts[os_:oe]
            and self._vals[s:e] == other._vals[os_:oe]
            and self._ids[s:e] == other._ids[os_:oe]
        )

    def __hash__(self) -> int:
        return hash((self.ids, self.ts, self.values))

    # positions are relative to the view: 0 .. len(self)
    def ts_left(self, x: int, lo: int = 0) -> int:
        """``bisect_left`` of ``x`` in the timestamps, from ``lo``."""
        return bisect_left(self._ts, x, self._start + lo, self._end) - self._start

    def ts_right(self, x: int, lo: int = 0) -> int:
        """``bisect_right`` of ``x`` in the timestamps, from ``lo``."""
        return bisect_right(self._ts, x, self._start + lo, self._end) - self._start

    def values_between(self, lo: int, hi: int) -> list[float]:
        return self._vals[self._start + lo : self._start + hi] if hi > lo else []

    def index(self, signal_id: str) -> int:
        """Position of the first row with ``signal_id`` (raises ``ValueError``)."""
        return self._ids.index(signal_id, self._start, self._end) - self._start

    def value_at(self, i: int) -> float:
        return self._vals[self._start + i]

    def inserted(self, lo: int, at: int, row: tuple[str, int, float], keep: int) -> tuple[Rows, list[str], list[float]]:
        """Rows ``[lo:]`` with ``row`` inserted before ``at``, then their last ``keep``; and the ids and values left out."""
        s, e = self._start, self._end
        ids, ts, vals = self._ids, self._ts, self._vals
        if s + at == e and e == len(ids) and keep > 0:  # the newest rows, appended at the end: no copy
            end = e + 1
            start = max(s + lo, end - keep)
            gone = ids[s:start], vals[s:start]
            ids.append(row[0])
            ts.append(row[1])
            vals.append(row[2])
            if start >= COMPACT_FROM and 2 * start > end:
                return Rows(ids[start:end], ts[start:end], vals[start:end]), *gone
            return Rows(ids, ts, vals, start, end), *gone
        a, b = s + lo, s + at
        new_ids, new_ts, new_vals = (
            [*ids[a:b], row[0], *ids[b:e]],
            [*ts[a:b], row[1], *ts[b:e]],
            [*vals[a:b], row[2], *vals[b:e]],
        )
        cut = len(new_ids) - keep
        if cut <= 0:
            return Rows(new_ids, new_ts, new_vals), ids[s:a], vals[s:a]
        return Rows(new_ids[cut:], new_ts[cut:], new_vals[cut:]), ids[s:a] + new_ids[:cut], vals[s:a] + new_vals[:cut]

    def without(self, signal_id: str) -> tuple[Rows, list[float]]:
        """These rows less every row of ``signal_id`` (a copy), and the values removed."""
        ids: list[str] = []
        ts: list[int] = []
        vals: list[float] = []
        gone: list[float] = []
        for i in range(self._start, self._end):
            if self._ids[i] == signal_id:
                gone.append(self._vals[i])
            else:
                ids.append(self._ids[i])
                ts.append(self._ts[i])
                vals.append(self._vals[i])
        return Rows(ids, ts, vals), gone
