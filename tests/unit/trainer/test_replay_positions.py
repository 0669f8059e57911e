"""The replay's per-batch bookkeeping: next offset per partition and records per topic."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

from trainer.warehouse.replay import _read_positions


def test_read_positions_match_a_per_record_scan() -> None:
    rng = np.random.default_rng(3)
    topics, partitions, offsets = [], [], []
    next_in = Counter[tuple[str, int]]()
    for _ in range(500):  # records of several partitions interleaved, each partition in offset order
        tp = (f"t{rng.integers(0, 3)}", int(rng.integers(0, 4)))
        next_in[tp] += int(rng.integers(1, 3))  # offsets may skip (compaction, transaction markers)
        topics.append(tp[0])
        partitions.append(tp[1])
        offsets.append(next_in[tp] + 1000)

    read = _read_positions(pa.array(topics), np.asarray(partitions, np.int32), np.asarray(offsets, np.int64))

    assert read.next_offsets == {tp: o + 1 for tp, o in zip(zip(topics, partitions, strict=True), offsets, strict=True)}
    assert read.by_topic == Counter(topics)
