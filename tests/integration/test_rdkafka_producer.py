"""The worker's Faust producer sends through librdkafka (agents.glue.faust.rdkafka_producer), on the real broker."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import faust
import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka.admin import AdminClient, NewTopic
from faust.exceptions import ProducerSendError

from agents.glue.faust.rdkafka_producer import RdKafkaProducer
from agents.glue.faust.transport import faust_settings, install_transport
from config.settings import Settings
from streams.consumer import make_consumer

PARTITIONS = 3


@pytest.fixture
def topic(settings: Settings) -> str:
    name = f"t-rdprod-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(settings.kafka_config())
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(30)
    return name


def _read_all(settings: Settings, topic: str, n: int) -> list[tuple[int, bytes, bytes]]:
    consumer = make_consumer(settings, f"g-{uuid.uuid4().hex[:8]}", **{"auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[tuple[int, bytes, bytes]] = []
    try:
        for _ in range(300):
            for msg in consumer.consume(100, 0.2):
                if not msg.error():
                    got.append((msg.partition(), msg.key(), msg.value()))
            if len(got) >= n:
                break
    finally:
        consumer.close()
    return got


def test_sends_are_acknowledged_flushed_and_placed_like_every_other_producer(
    settings: Settings, topic: str, tmp_path: Path
):
    app = faust.App(
        f"t-rdprod-{uuid.uuid4().hex[:6]}",
        **faust_settings(Settings(**{**vars_of(settings), "data_dir": tmp_path}), worker_id="t"),
    )
    install_transport(app, settings)

    async def run() -> tuple[list, list, Exception | None]:
        producer = app.producer
        assert isinstance(producer, RdKafkaProducer)
        await producer.start()
        try:
            explicit = [
                await producer.send(topic, b"k%d" % i, b"explicit-%d" % i, i % PARTITIONS, None, None)
                for i in range(30)
            ]
            keyed = [await producer.send(topic, b"sym-%d" % i, b"keyed-%d" % i, None, None, None) for i in range(30)]
            for i in range(19):
                producer.produce_now(topic, b"now-%d" % i, b"now-%d" % i, i % PARTITIONS)
            held_back = [(b"now-19", 19 % PARTITIONS)]  # written by a hook, as the worker's books
            unacknowledged_at_write: list[int] = []

            def take():  # at the flush's start: what is held back now ...
                taken = list(held_back)
                held_back.clear()

                def write() -> None:  # ... written once everything sent before is acknowledged
                    unacknowledged_at_write.append(len(producer._rd) + len(producer._rd_now))
                    for key, part in taken:
                        producer.produce_now(topic, key, key, part)

                return write

            producer.before_flush(take)
            await producer.flush()
            assert held_back == [] and unacknowledged_at_write == [0]
            assert all(f.done() for f in explicit + keyed)  # flush returned: every record acknowledged
            assert len(producer._rd) == 0 and len(producer._rd_now) == 0
            with pytest.raises(ProducerSendError, match=topic):
                producer.produce_now(topic, b"k", b"nowhere", 99)
            failure = None
            try:  # refused at once (librdkafka knows the topic has 3 partitions) or by its delivery report
                await asyncio.wait_for(await producer.send(topic, b"k", b"nowhere", 99, None, None), 30)
            except ProducerSendError as exc:
                failure = exc
            return [f.result() for f in explicit], [f.result() for f in keyed], failure
        finally:
            await producer.stop()

    explicit, keyed, failure = asyncio.run(run())
    assert [m.partition for m in explicit] == [i % PARTITIONS for i in range(30)]
    for p in range(PARTITIONS):
        offsets = [m.offset for m in explicit if m.partition == p]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    java_partitioner = DefaultPartitioner()
    for i, meta in enumerate(keyed):  # same partition as aiokafka / Java clients put the key on
        assert meta.partition == java_partitioner(b"sym-%d" % i, list(range(PARTITIONS)), list(range(PARTITIONS)))
    assert failure is not None and topic in str(failure)
    got = _read_all(settings, topic, 80)
    assert sorted(v for _, _, v in got) == sorted(
        [b"explicit-%d" % i for i in range(30)]
        + [b"keyed-%d" % i for i in range(30)]
        + [b"now-%d" % i for i in range(20)]
    )
    assert {(p, v) for p, _, v in got if v.startswith(b"now")} == {(i % PARTITIONS, b"now-%d" % i) for i in range(20)}
    assert {(p, k) for p, k, v in got if v.startswith(b"keyed")} == {
        (m.partition, b"sym-%d" % i) for i, m in enumerate(keyed)
    }


def vars_of(settings: Settings) -> dict:
    from dataclasses import fields

    return {f.name: getattr(settings, f.name) for f in fields(settings)}


def test_a_produce_now_record_that_fails_after_the_call_makes_the_flush_raise(
    settings: Settings, topic: str, tmp_path: Path
):
    """produce_now's producer reports failures only: a record that fails in librdkafka after the call
    returned (a partition of a topic it has no metadata for yet, which turns out not to exist) still
    fails the next flush, so Faust does not commit past it."""
    app = faust.App(
        f"t-rdfail-{uuid.uuid4().hex[:6]}",
        **faust_settings(Settings(**{**vars_of(settings), "data_dir": tmp_path}), worker_id="t"),
    )
    install_transport(app, settings)

    async def run() -> None:
        producer = app.producer
        await producer.start()
        try:
            producer.produce_now(topic, b"k", b"fine", 0)
            producer.produce_now(f"{topic}-unknown", b"k", b"nowhere", 7)  # accepted: no metadata to refuse it yet
            with pytest.raises(ProducerSendError, match=f"1 records not delivered, e.g. {topic}-unknown"):
                await asyncio.wait_for(producer.flush(), 60)
            await producer.flush()  # reported once: the next flush has nothing left to fail on
        finally:
            await producer.stop()

    asyncio.run(run())
