"""How long the worker remembers a decided signal: per-symbol, event-time retention.

The worker's ``decided`` table answers a repeated signal with its first decision,
so it must not forget a signal that can still come back; yet a worker that runs
around the clock cannot keep every signal it ever decided (~1 KB each, in memory
and in the compacted changelog that a restarted worker recovers).

The rule, per symbol (signals are keyed by symbol, so one symbol's signals, their
``decided`` entries and its watermark all live on one partition, with one worker):

- the symbol's *watermark* W is the latest ``ts_event`` among its decided signals;
- the entry of a signal older than ``W - horizon`` *expires* (the glue deletes it,
  with a tombstone in the changelog);
- a signal older than ``W - horizon`` that has no entry is *stale*: it is
  dead-lettered, never decided. So a repeat of an expired signal is refused with a
  reason, never decided a second time, differently.

W only grows: the entry that set it is the symbol's newest and is never expired,
so a worker that recovers the table recovers W with it (``rebuild``). Time is the
signals' own event time, so a replay of old history expires by the history's
clock, not the wall clock's. ``horizon_us == 0`` keeps everything (no expiry, no
stale signal).

Pure bookkeeping: no Faust, no Kafka. ``agents.inputs`` applies what it returns; the
watermark that decides staleness is also kept in each symbol's book
(``agents.book.stale``), so it moves exactly with the log.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import NamedTuple

from agents.timestamps import DAY_US


class Expired(NamedTuple):
    """A ``decided`` entry to delete: its key, and the partition its changelog records went to."""

    key: bytes
    partition: int


def is_stale(ts_us: int, watermark_us: int | None, horizon_us: int) -> bool:
    """A signal at ``ts_us`` is older than its symbol's ``watermark_us - horizon_us`` (never when either is unset)."""
    return horizon_us > 0 and watermark_us is not None and ts_us < watermark_us - horizon_us


def horizon_from_days(days: float) -> int:
    """The horizon in microseconds for a setting in days (``0`` keeps everything); refuses a negative one."""
    if not days >= 0:  # NaN too
        raise ValueError(f"decided retention must be >= 0 days (0 keeps every decided signal), not {days!r}")
    return round(days * DAY_US)


class DecidedRetention:
    """The watermark per symbol and the entries still kept, oldest first, per symbol."""

    def __init__(self, horizon_us: int) -> None:
        if horizon_us < 0:
            raise ValueError(f"horizon must be >= 0 microseconds, not {horizon_us}")
        self.horizon_us = horizon_us
        self._watermarks: dict[str, int] = {}
        self._kept: dict[str, list[tuple[int, bytes, int]]] = {}  # symbol -> heap of (ts_us, key, partition)

    def __len__(self) -> int:
        """Entries known and not expired."""
        return sum(map(len, self._kept.values()))

    def watermark(self, symbol: str) -> int | None:
        return self._watermarks.get(symbol)

    def stale(self, symbol: str, ts_us: int) -> bool:
        """A signal of ``symbol`` at ``ts_us`` with no ``decided`` entry must not be decided (see the module)."""
        return is_stale(ts_us, self._watermarks.get(symbol), self.horizon_us)

    def note(self, symbol: str, ts_us: int, key: bytes, partition: int) -> list[Expired]:
        """A new entry for a decided signal; returns the entries of ``symbol`` that expire now."""
        if self.horizon_us == 0:
            return []
        watermark = self._raise_watermark(symbol, ts_us)
        heap = self._kept.get(symbol)
        if heap is None:
            heap = self._kept[symbol] = []
        heapq.heappush(heap, (ts_us, key, partition))
        return self._expire(heap, watermark - self.horizon_us)

    def rebuild(self, entries: Iterable[tuple[str, int, bytes, int]]) -> list[Expired]:
        """Start again from the table's entries ``(symbol, ts_us, key, partition)``, after a recovery or rebalance.

        Returns the entries already past their symbol's horizon (for instance, when the
        horizon was shortened since they were written).
        """
        self._watermarks.clear()
        self._kept.clear()
        if self.horizon_us == 0:
            return []
        for symbol, ts_us, key, partition in entries:
            self._raise_watermark(symbol, ts_us)
            self._kept.setdefault(symbol, []).append((ts_us, key, partition))
        expired: list[Expired] = []
        for symbol, heap in self._kept.items():
            heapq.heapify(heap)
            expired += self._expire(heap, self._watermarks[symbol] - self.horizon_us)
        return expired

    def _raise_watermark(self, symbol: str, ts_us: int) -> int:
        """``symbol``'s watermark after a decided signal at ``ts_us``."""
        watermark = self._watermarks.get(symbol)
        if watermark is None or ts_us > watermark:
            self._watermarks[symbol] = watermark = ts_us
        return watermark

    @staticmethod
    def _expire(heap: list[tuple[int, bytes, int]], cutoff: int) -> list[Expired]:
        out: list[Expired] = []
        while heap and heap[0][0] < cutoff:
            _, key, partition = heapq.heappop(heap)
            out.append(Expired(key, partition))
        return out
