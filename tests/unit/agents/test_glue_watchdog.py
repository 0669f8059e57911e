"""agents.glue.watchdog: a held input partition with records to apply and no progress is a stall."""

from __future__ import annotations

from agents.glue.watchdog import PartitionState, ProgressWatch


def test_a_partition_with_lag_and_no_progress_for_the_stall_time_is_stalled():
    watch = ProgressWatch(stall_seconds=30)
    assert watch.sample(0, {0: PartitionState(10, 50), 1: PartitionState(5, 6)}) == ()
    assert watch.sample(20, {0: PartitionState(10, 60), 1: PartitionState(5, 6)}) == ()
    (stall,) = watch.sample(31, {0: PartitionState(10, 70), 1: PartitionState(5, 6)})
    assert (stall.partition, stall.lag, stall.seconds) == (0, 59, 31)
    assert "holds t [0] lag 59 for 31 s" in watch.describe("t") and watch.lag == 59


def test_progress_or_no_lag_is_not_a_stall_and_a_partition_let_go_is_forgotten():
    watch = ProgressWatch(stall_seconds=30)
    watch.sample(0, {0: PartitionState(10, 50)})
    assert watch.sample(40, {0: PartitionState(11, 50)}) == ()  # it moved
    assert watch.sample(80, {0: PartitionState(11, 12)}) == ()  # caught up: nothing to apply
    assert watch.sample(200, {0: PartitionState(11, 12)}) == ()
    watch.sample(201, {})
    assert watch.sample(300, {0: PartitionState(11, 90)}) == ()  # taken over again: its clock starts anew
    assert PartitionState(None, 3).lag == 3 and PartitionState(4, None).lag == 0
