"""agents.glue.contiguous: what the agent does with each input record, given the partition's progress."""

from __future__ import annotations

from agents.glue.contiguous import APPLY, REWIND, SKIP, due_offset, next_step


def test_the_record_due_is_applied_and_earlier_ones_are_skipped():
    assert next_step(8, applied=7, start=0, rewinding=False) == APPLY
    assert next_step(7, applied=7, start=0, rewinding=False) == SKIP  # read again after a restart
    assert next_step(0, applied=7, start=0, rewinding=True) == SKIP


def test_a_jump_rewinds_once_then_skips_until_the_record_due_comes():
    assert next_step(12, applied=7, start=0, rewinding=False) == REWIND
    assert next_step(13, applied=7, start=0, rewinding=True) == SKIP
    assert next_step(8, applied=7, start=0, rewinding=True) == APPLY


def test_a_partition_never_applied_starts_at_its_first_offset():
    assert due_offset(None, 40) == 40 and due_offset(7, 40) == 8
    assert next_step(40, applied=None, start=40, rewinding=False) == APPLY
    assert next_step(41, applied=None, start=40, rewinding=False) == REWIND  # 40 was dropped
