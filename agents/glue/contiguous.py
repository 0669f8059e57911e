"""Every record of the input topic is applied once, in offset order, none skipped.

Why. Faust 0.15.3 drops fetched records without telling anyone (``Consumer.getmany``,
``faust/transport/consumer.py``): records of a partition paused for table recovery,
and the rest of a fetched batch when the consumer generation changes or the flow
stops for a rebalance. aiokafka's fetch position is already past them, so they are
not fetched again; Faust's drain loop then sees the offsets jump and marks the
missing ones as a *gap* (``Consumer._add_gap``), which it counts as acknowledged --
meant for compacted topics and transaction markers -- and the next commit goes past
records nobody processed. On tansu that lost 85-1,421 signals per crash drill
(issue 20).

The input topic is neither compacted nor transactional: its offsets are contiguous,
so a jump means dropped records. Two parts:

- ``agents.glue.faust.drain`` never adds a gap on the input topics (the commit stops below
  the first record not acknowledged);
- the agent keeps, per input partition, the last offset applied -- the ``progress``
  table, written behind with the books (``agents.glue.book_store``), so it survives
  crashes and moves with the partition -- and asks ``next_step`` about every record:
  ``APPLY`` the one due; ``SKIP`` one at or before the progress (read again after a
  restart, or re-fetched after a rewind); ``REWIND`` on a jump: the consumer seeks the
  partition back to the record due (once; later records are skipped until it comes),
  so the dropped records are fetched and applied, in order.

A timer (``agents.app``) catches the jump no later record reveals: the dropped records
were the partition's last, and the consumer's position sits past the record due with
nothing arriving.
"""

from __future__ import annotations

from typing import Final

APPLY: Final = "apply"
SKIP: Final = "skip"
REWIND: Final = "rewind"


def next_step(offset: int, *, applied: int | None, start: int, rewinding: bool) -> str:
    """What to do with the record at ``offset`` of a partition.

    ``applied``: the last offset of the partition applied (None: none ever); ``start``:
    the partition's first offset (the record due when none was applied); ``rewinding``:
    the consumer was sent back to the record due and it has not come yet.
    """
    due = start if applied is None else applied + 1
    if offset == due:
        return APPLY
    if offset < due:
        return SKIP
    return SKIP if rewinding else REWIND


def due_offset(applied: int | None, start: int) -> int:
    """The offset of the record due next."""
    return start if applied is None else applied + 1
