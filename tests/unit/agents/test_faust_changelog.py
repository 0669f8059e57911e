"""ChangelogWriter is only used where skipping Faust's per-write future changes nothing."""

from __future__ import annotations

import faust
import pytest

from agents.glue.faust.changelog import ChangelogWriter


def test_memory_store_at_least_once_is_accepted():
    ChangelogWriter(faust.App("t-cl-ok", store="memory://", broker="kafka://127.0.0.1:1"))


@pytest.mark.parametrize("conf", [{"store": "rocksdb://"}, {"processing_guarantee": "exactly_once"}])
def test_other_stores_or_exactly_once_are_refused(conf):
    app = faust.App("t-cl-no", broker="kafka://127.0.0.1:1", **{"store": "memory://", **conf})
    with pytest.raises(ValueError, match="ChangelogWriter"):
        ChangelogWriter(app)


def _writer(app_id: str, partitions: int) -> tuple[ChangelogWriter, object, list]:
    """A writer on a memory-store app whose producer records ``(topic, key, value, partition)``; its table."""
    app = faust.App(app_id, store="memory://", broker="kafka://127.0.0.1:1")
    table = app.Table("t", key_type=bytes, value_type=bytes, partitions=partitions)
    sent: list = []

    class Producer:
        def produce_now(self, topic, key, value, partition):
            sent.append((topic, key, value, partition))

    app._producer = Producer()
    return ChangelogWriter(app), table, sent


def test_reads_and_writes_are_those_of_the_table():
    writer, table, sent = _writer("t-cl-rw", 2)
    assert writer.get(table, b"k") is None
    writer.set(table, b"k", b"v1", 1)
    writer.set(table, b"k", b"v2", 0)
    assert writer.get(table, b"k") == table.get(b"k") == b"v2"
    assert writer.get(table, b"other") is None and table.get(b"other") is None
    assert sent == [
        (table.changelog_topic.get_topic_name(), b"k", b"v1", 1),
        (table.changelog_topic.get_topic_name(), b"k", b"v2", 0),
    ]


def test_delete_sends_a_tombstone_to_the_partition_of_the_key_and_forgets_it():
    writer, table, sent = _writer("t-cl-del", 4)
    writer.set(table, b"k", b"v", 3)
    assert writer.partition(table, b"k") == 3 and writer.partition(table, b"other") is None
    writer.delete(table, b"k", 3)
    topic = table.changelog_topic.get_topic_name()
    assert sent == [(topic, b"k", b"v", 3), (topic, b"k", None, 3)]
    assert writer.get(table, b"k") is None and writer.partition(table, b"k") is None
    assert table.get(b"k") is None
