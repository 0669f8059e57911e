"""A Faust transport tuned for tansu, and the Faust settings built from ``Settings``.

Faust 0.15 hard-codes aiokafka's ``fetch_max_wait_ms=1500`` in
``AIOKafkaConsumerThread._create_worker_consumer`` (no setting reaches it), and
tansu holds a fetch at the log end for the full wait, so a stock Faust worker
answers in up to ~1.5 s. ``TansuTransport`` sets the consumer's wait on the
aiokafka object it builds, before the fetcher is created at ``start()``.

Why 100 ms and not 10 ms. With S3 storage, tansu answers a fetch for data that
is *behind* the log end (a backlog: a worker taking over after a SIGKILL or a
rebalance, or one that fell behind) with whatever it read within the wait; at
10 ms that is mostly nothing, so the consumer crawls. Measured on this machine
with plain clients, reading back 600 one-record batches from an S3-backed
topic: librdkafka ``fetch.wait.max.ms`` 10 -> 299 records in 30 s; 50 -> 1.1 s;
100 -> 0.5 s; 250 -> 0.5 s; aiokafka ``fetch_max_wait_ms`` 10 -> 571 in 20 s;
100 -> 0.6 s (also with 21 partitions in the request). Memory storage reads the
same backlog in 0.05 s at any wait. That was the "stall after takeover": not
Faust's pause/resume nor aiokafka's fetcher (its state was sane: partitions
assigned, unpaused, one fetch in flight, positions creeping). At the log end
the wait bounds the added latency (<= 100 ms), inside the 500 ms budget.

The producer batch is raised from aiokafka's 16 KiB: aiokafka blocks
``send()`` while a partition's full batch awaits its ack (a FeaturesComputed is
~1.5 KB, ~10 per batch); against the loaded S3 broker a worker taking over read
its backlog at ~13 signals/s with 16 KiB batches and ~100-200/s with 512 KiB.
The producer never enables idempotence outside transactions (tansu rejects the
idempotent producer's InitProducerId; we deduplicate instead).

The consumer hands records to the agents through ``agents.glue.faust.drain`` (no
tasks per record).

Table recovery asks the consumer for each changelog partition's end
(``Consumer.highwaters``: ListOffsets), reads up to it and checks that what it read
before is not past it. tansu's ListOffsets is short (``streams.end_offsets``): the
recovery stopped early, leaving a table without its newest records, or the worker
died with ``ConsistencyError: The persisted offset ... is higher than the last offset
in that topic (highwater)``. The consumer installed here answers ``highwaters`` from
``streams.end_offsets`` (``RLSIZER_END_OFFSETS``); the consistency check is off, since
with memory stores the offsets it compares are ones this process read itself in an
earlier recovery, never a disk that could be ahead of the topic.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from agents.glue.faust.credentials import faust_broker_credentials
from agents.glue.faust.drain import drain_for_this_faust
from agents.glue.faust.rdkafka_producer import RdKafkaProducer, TansuProducer
from config.settings import Settings
from streams.end_offsets import end_offsets
from streams.producer import producer_config

FETCH_MAX_WAIT_MS = 100
PRODUCER_MAX_BATCH_BYTES = 512 * 1024


class TansuConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    fetch_max_wait_ms: ClassVar[int] = FETCH_MAX_WAIT_MS

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read by AIOKafkaConsumer.start()
        return consumer


class TansuConsumer(faust_aiokafka.Consumer):
    _drain_messages = (
        drain_for_this_faust()
    )  # records handed to the agents without a task each (agents.glue.faust.drain)
    #: librdkafka settings and mode for ``streams.end_offsets``; ``None``: aiokafka's ListOffsets
    end_offsets_from: ClassVar[tuple[Mapping[str, Any], str] | None] = None
    #: topics whose offsets are contiguous (not compacted, no transactions): a jump is never a gap to commit past
    contiguous_topics: ClassVar[frozenset[str]] = frozenset()

    def _new_consumer_thread(self) -> TansuConsumerThread:
        return TansuConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        """Each partition's end offset, from ``streams.end_offsets`` (see the module doc)."""
        if self.end_offsets_from is None:
            return await super().highwaters(*partitions)
        kafka, mode = self.end_offsets_from
        asked = [(tp.topic, tp.partition) for tp in partitions]
        ends = await asyncio.get_running_loop().run_in_executor(None, partial(end_offsets, kafka, asked, mode=mode))
        return {tp: ends[(tp.topic, tp.partition)] for tp in partitions}


class TansuTransport(faust_aiokafka.Transport):
    Consumer = TansuConsumer
    Producer = TansuProducer


def install_transport(app: Any, settings: Settings, *, contiguous_topics: tuple[str, ...] = ()) -> None:
    """Make ``app`` consume through ``TansuTransport`` and send through librdkafka (call before start).

    ``contiguous_topics``: the app's input topics, whose missing offsets are never
    committed past (``agents.glue.contiguous``).

    Sends: ``agents.glue.faust.rdkafka_producer`` (the producer settings of every other
    rlsizer producer, ``streams.producer.producer_config``, with a 10 ms linger: fewer,
    larger produce requests; the embedded tansu spends ~175 us of CPU per record at a
    1 ms linger and ~70 us at 20 ms, on the cores the worker needs. The linger adds at
    most 10 ms to a decision's latency, against a 500 ms budget).
    """
    producer = RdKafkaProducer.with_config(producer_config(settings, **{"linger.ms": 10}))
    consumer = type(
        "EndReadingConsumer",
        (TansuConsumer,),
        {
            "end_offsets_from": (settings.kafka_config(), settings.end_offsets),
            "contiguous_topics": frozenset(contiguous_topics),
        },
    )
    transport = type("RdKafkaTransport", (TansuTransport,), {"Producer": producer, "Consumer": consumer})
    app.transport = transport(app.conf.broker_consumer, app)  # Faust builds app.producer from this one
    app.producer_transport = transport(app.conf.broker_producer, app)


def worker_datadir(settings: Settings, worker_id: str) -> Path:
    return Path(settings.data_dir) / "worker" / worker_id


def faust_settings(settings: Settings, *, worker_id: str) -> dict[str, Any]:
    """Keyword settings for ``faust.App`` (id, broker, timeouts, web, datadir)."""
    conf: dict[str, Any] = {
        "broker": f"kafka://{settings.kafka_bootstrap}",
        "key_serializer": "raw",
        "value_serializer": "raw",
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.topic_replication,
        "broker_session_timeout": 6.0,
        "broker_heartbeat_interval": 1.0,
        "broker_commit_interval": 0.5,
        "broker_rebalance_timeout": 20.0,
        "producer_acks": -1,
        "producer_linger": 0.001,
        "producer_max_batch_size": PRODUCER_MAX_BATCH_BYTES,
        "consumer_auto_offset_reset": "earliest",
        "datadir": str(worker_datadir(settings, worker_id)),
        "web_enabled": settings.worker_web_port > 0,
        "web_port": settings.worker_web_port or 6066,
        "web_host": settings.worker_web_host,
        "web_bind": settings.worker_web_host,
        "store": "memory://",
        "table_cleanup_interval": 3600.0,
        "recovery_consistency_check": False,  # see the module doc
        "worker_redirect_stdouts": False,
    }
    credentials = faust_broker_credentials(settings)
    if credentials is not None:
        conf["broker_credentials"] = credentials
    return conf


def faust_worker(app: Any, *, loglevel: str) -> Any:
    """A ``faust.Worker`` for ``app`` logging at ``loglevel``, without the terminal spinner,
    whose objects alive once it has started are left out of garbage collection.

    Faust's worker sets the root logger to DEBUG so that its spinner turns at
    every log record (``Worker._setup_spinner_handler``) whatever ``loglevel``
    says; aiokafka then builds a debug record for every request and send, which
    was ~4% of a busy worker's CPU. With the spinner off the root logger stays
    at ``loglevel``.

    Garbage collection: a started worker holds ~180k objects that live as long
    as it does (imported modules, botocore's service models for the S3 client:
    ~24k OrderedDicts, Faust and aiokafka). Every full collection walked them
    all: 50-120 ms with the event loop stopped, a few times a minute, which was
    the worker's p99 latency. ``gc.freeze()`` once startup is done moves them
    to the permanent generation; objects made afterwards are collected as usual.
    """

    from faust.worker import Worker as FaustWorker  # lazy: loads faust only when used

    class Worker(FaustWorker):  # same name: its log lines read "[^Worker]: Ready"
        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            gc.collect()
            gc.freeze()

    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None
    return worker
