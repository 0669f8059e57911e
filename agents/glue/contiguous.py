"""Every record of the input topic reaches the worker, in offset order, none skipped.

Why. Faust 0.15.3 drops fetched records without telling anyone (``Consumer.getmany``,
``faust/transport/consumer.py``): records of a partition that is paused for table
recovery, and the rest of a fetched batch when the consumer generation changes or
the flow stops for a rebalance. aiokafka's fetch position is already past them, so
they are never fetched again; Faust's drain loop then sees the next record's offset
jump and marks the missing offsets as a *gap* (``Consumer._add_gap``), which it
counts as acknowledged -- meant for compacted topics and transaction markers -- and
its next commit goes past records nobody processed. On tansu that lost 85-1,421
signals per crash drill (issue 20).

The input topic is neither compacted nor transactional, so its offsets are
contiguous: a jump means dropped records. ``OffsetRuns`` keeps, per input
partition, the next offset the agents must get. ``agents.glue.drain`` asks it about
every record before delivering it:

- ``DELIVER``: the expected record (then the expected offset moves on);
- ``DROP``: a record before the expected one (delivered already; aiokafka refetched it);
- ``REWIND``: a record past the expected one -- the consumer seeks the partition back
  to the expected offset (once; later records of the partition are dropped until it
  comes), so the missing records are fetched and delivered again, in order.

A timer (``TansuConsumer``) catches the case no later record reveals: the dropped
records were the partition's last, and aiokafka's position sits past the expected
offset with nothing arriving. The expected offsets restart at every rebalance from
the committed offsets Faust seeks to (``Consumer.perform_seek``).
"""

from __future__ import annotations

from typing import Final, Generic, Hashable, TypeVar

DELIVER: Final = "deliver"
DROP: Final = "drop"
REWIND: Final = "rewind"

TP = TypeVar("TP", bound=Hashable)


class OffsetRuns(Generic[TP]):
    """The next offset due per partition, and the partitions being rewound."""

    __slots__ = ("_next", "_rewinding")

    def __init__(self) -> None:
        self._next: dict[TP, int] = {}
        self._rewinding: set[TP] = set()

    def restart(self, starts: dict[TP, int]) -> None:
        """After a rebalance: each partition is read from ``starts`` (the committed offsets)."""
        self._next = dict(starts)
        self._rewinding.clear()

    def tracked(self, tp: TP) -> bool:
        return tp in self._next

    def expected(self, tp: TP) -> int | None:
        return self._next.get(tp)

    def check(self, tp: TP, offset: int) -> str:
        """What to do with the record at ``offset`` of ``tp`` (see the module doc)."""
        due = self._next.get(tp)
        if due is None:  # not an input partition, or not (yet) assigned: Faust's own rules apply
            return DELIVER
        if offset == due:
            self._rewinding.discard(tp)
            return DELIVER
        if offset < due:
            return DROP
        if tp in self._rewinding:
            return DROP
        self._rewinding.add(tp)
        return REWIND

    def delivered(self, tp: TP, offset: int) -> None:
        if tp in self._next:
            self._next[tp] = offset + 1

    def rewound(self, tp: TP) -> None:
        """The partition was sought back to its expected offset by the timer (no record revealed the gap)."""
        self._rewinding.add(tp)
