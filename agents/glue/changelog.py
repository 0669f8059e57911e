"""Table writes on the signal path: the value in memory and its changelog record, without Faust's per-write future.

``table[key] = value`` in Faust sends the changelog record through
``Topic.send_soon``: a ``FutureMessage``, a buffer task and a delivery callback
per write, whose only job after delivery is ``Store.set_persisted_offset`` (the
offset a RocksDB store keeps on disk). The worker's stores are in memory, where
that call does nothing, and its tables have no TTL, no window and no
transactions; so a write is the same as: the record handed to the producer
(``produce_now``, same topic, key, value and partition; flushed before every
commit like any other) and the value set in the table's store. Per signal that
saves two of the worker's four producer round trips through Faust.

``ChangelogWriter(app)`` refuses an app where this would not hold (another
store, exactly-once processing): there, plain ``table[key] = value`` is right.
"""

from __future__ import annotations

from typing import Any


class ChangelogWriter:
    def __init__(self, app: Any) -> None:
        store = str(app.conf.store)
        if not store.startswith("memory:"):
            raise ValueError(f"ChangelogWriter needs the memory store (its persisted offsets are a no-op), not {store}")
        if str(getattr(app.conf, "processing_guarantee", "at_least_once")).lower().endswith("exactly_once"):
            raise ValueError("ChangelogWriter bypasses Faust's transactional sends: not for exactly-once processing")
        self._app = app

    def set(self, table: Any, key: bytes, value: bytes, partition: int) -> None:
        """``table[key] = value`` with the changelog record on ``partition`` (the partition of the record being processed)."""
        self._app.producer.produce_now(table.changelog_topic.get_topic_name(), key, value, partition)
        table.data[key] = value
