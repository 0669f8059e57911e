"""Every place the worker reaches into Faust's internals, fenced here, each checked against faust-streaming 0.15.3.

faust-streaming is pinned (``pyproject.toml``) because these modules override or depend
on code that is not Faust's public API. Each entry of ``CHECKED`` names the Faust
function, the digest of its source as installed when it was last read, and why we
depend on it; ``tests/unit/agents/test_faust_overrides.py`` fails when the installed
Faust differs, so an upgrade is re-read here before it ships.

- ``drain``: a copy of ``Consumer._drain_messages`` that hands records to the agents
  without four tasks each, and adds no gap on the input topic;
- ``transport``: the consumer (fetch wait set on aiokafka's object, end offsets for table
  recovery from ``streams.end_offsets``) and producer (no idempotence on tansu);
- ``rdkafka_producer``: Faust's producer sending through librdkafka, flushed in two
  phases for the worker's write-behind books;
- ``changelog``: table reads and writes straight on the memory store.
"""

from __future__ import annotations

from typing import Final, NamedTuple

FAUST_VERSION: Final = "0.15.3"


class Checked(NamedTuple):
    qualname: str  # module.Class.function in faust-streaming
    sha256: str  # of ``inspect.getsource`` of it, as read
    why: str


CHECKED: Final[tuple[Checked, ...]] = (
    Checked(
        "faust.transport.consumer.Consumer._drain_messages",
        "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417",
        "copied line for line in drain.drain_messages (delivery without tasks; no gap on the input topic)",
    ),
    Checked(
        "faust.transport.consumer.Consumer.getmany",
        "4b168d84882a70d6e3e2f9804430a63b92f8fd117d3187cbb4aeb54305bda34e",
        "drops records of paused partitions and the rest of a batch on a generation change: "
        "agents.glue.contiguous reads them again",
    ),
    Checked(
        "faust.transport.consumer.Consumer._new_offset",
        "1d2c7ea89a7ad4f1a216c1d51936e569162cd66bd56f889e13fd29c910b58eb0",
        "commits up to the first offset not acknowledged unless a gap covers it: no gap on the input topic",
    ),
    Checked(
        "faust.transport.consumer.Consumer._add_gap",
        "4df2573ded7c1c2cde04dc6bde6d4480cb5875ef565256e56966b585ae39b1c1",
        "the gap drain.drain_messages no longer adds on the input topic",
    ),
    Checked(
        "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._create_worker_consumer",
        "c2701bfc3e6f6cad95c2be36d6a255a86e2c57d18d36cc1082b5fb5c482d99d7",
        "hard-codes fetch_max_wait_ms=1500; transport.TansuConsumerThread sets it on the object it returns",
    ),
    Checked(
        "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._seek_wait",
        "9d221e816d9404678ac2d802b1419c7c2d166cbc9c8ec9f689a77673b8f2e85f",
        "the rewind of agents.app seeks through it: in the consumer's thread, moving Faust's read offset too",
    ),
    Checked(
        "faust.transport.consumer.ThreadDelegateConsumer.highwaters",
        "3a2723b22582ffb712e24c25b9f3eecad230e76847b1c5ec40fe369c6fbb2bdf",
        "overridden by transport.TansuConsumer.highwaters (true end offsets)",
    ),
    Checked(
        "faust.tables.recovery.Recovery._build_highwaters",
        "91b4cc0d3724ae7bfc398e873684fc6f667ef8feb61a3b3314346ef11f2823de",
        "table recovery reads to consumer.highwaters() - 1: the true ends make it read everything",
    ),
    Checked(
        "faust.transport.drivers.aiokafka.Producer._settings_extra",
        "a4c7bc41b63822236e4c9be1c49437d091f58c1b3a983eecabb7362a819aa8bd",
        "overridden by rdkafka_producer.TansuProducer (tansu refuses the idempotent producer)",
    ),
    Checked(
        "faust.stores.memory.Store.apply_changelog_batch",
        "71863e3cd727aac2001c4f19a393c637275eab36056c9a2d395ed1c7528e7647",
        "recovery fills store.data and store._key_partition, which changelog.ChangelogWriter reads and writes",
    ),
)
