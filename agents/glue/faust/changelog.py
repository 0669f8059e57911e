"""Table reads and writes on the signal path, without Faust's per-access machinery.

``table[key] = value`` in Faust sends the changelog record through
``Topic.send_soon``: a ``FutureMessage``, a buffer task and a delivery callback
per write, whose only job after delivery is ``Store.set_persisted_offset`` (the
offset a RocksDB store keeps on disk). The worker's stores are in memory, where
that call does nothing, and its tables have no TTL, no window and no
transactions; so a write is the same as: the record handed to the producer
(``produce_now``, same topic, key, value and partition; flushed before every
commit like any other) and the value set in the table's store. Per signal that
saves two of the worker's four producer round trips through Faust.

Reads the same way: ``table.get(key)`` goes through ``Mapping.get``, the table's
``__getitem__``, a sensor call and, for a key the table does not hold (every new
signal's ``decided`` entry), ``__missing__`` raising ``KeyError``; the memory
store's dict answers the same lookup directly (``get``). The only thing skipped
is Faust's table-get counter of its own monitor.

``ChangelogWriter(app)`` refuses an app where this would not hold (another
store, exactly-once processing): there, plain ``table[key] = value`` and
``table.get(key)`` are right.
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
        self._topics: dict[int, str] = {}  # id(table) -> its changelog topic's name

    def set(self, table: Any, key: bytes, value: bytes, partition: int) -> None:
        """``table[key] = value`` with the changelog record on ``partition`` (the partition of the record being processed)."""
        self._app.producer.produce_now(self._topic(table), key, value, partition)
        store = table.data
        store.data[key] = value
        store._key_partition[key] = partition  # as the store records for a key it recovers (see ``partition``)

    def delete(self, table: Any, key: bytes, partition: int) -> None:
        """``del table[key]``: a tombstone on ``partition`` (where the key's records went) and the key out of the store."""
        self._app.producer.produce_now(self._topic(table), key, None, partition)
        store = table.data
        store.data.pop(key, None)
        store._key_partition.pop(key, None)

    @staticmethod
    def partition(table: Any, key: bytes) -> int | None:
        """The partition of ``key``'s changelog records: recorded by ``set``, or by the store when it recovered them.

        The memory store drops the keys of partitions this worker no longer holds when a
        recovery completes, by this record.
        """
        partition: int | None = table.data._key_partition.get(key)
        return partition

    def _topic(self, table: Any) -> str:
        topic = self._topics.get(id(table))
        if topic is None:
            topic = self._topics[id(table)] = table.changelog_topic.get_topic_name()
        return topic

    @staticmethod
    def get(table: Any, key: bytes) -> Any:
        """``table.get(key)``: the value in the table's memory store, or ``None``."""
        return table.data.data.get(key)
