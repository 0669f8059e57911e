"""Confluent's own Avro serde and our EventCodec agree through the real signals topic."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas.catalog import schema_path
from schemas.codec import to_record, unframe
from schemas.events import SignalRaised, field_names
from tests.unit.schemas.factories import make_signal

pytestmark = pytest.mark.integration


def through_kafka(settings, topic: str, key: bytes, value: bytes) -> bytes:
    """Produce one message and read exactly that message back from its partition and offset."""
    delivered: list[Any] = []
    producer = Producer(settings.kafka_config())
    producer.produce(topic, key=key, value=value, on_delivery=lambda err, msg: delivered.append((err, msg)))
    assert producer.flush(10) == 0
    err, msg = delivered[0]
    assert err is None
    consumer = Consumer(settings.kafka_config() | {"group.id": f"t-{uuid.uuid4().hex}", "fetch.wait.max.ms": 20})
    try:
        consumer.assign([TopicPartition(topic, msg.partition(), msg.offset())])
        got = consumer.poll(10)
        assert got is not None and got.error() is None and got.key() == key
        return got.value()
    finally:
        consumer.close()


@pytest.fixture
def signal() -> SignalRaised:
    return make_signal(signal_id=f"sig-{uuid.uuid4().hex[:8]}", stop_price=99.0, attrs={"bot": "b1"})


def test_confluent_avro_serializer_bytes_decode_with_our_codec(settings, codec, signal):
    topic = settings.topic("inputs")
    client = SchemaRegistryClient({"url": settings.registry_url})
    serializer = AvroSerializer(
        client,
        schema_path(SignalRaised).read_text(),
        lambda e, _ctx: to_record(field_names(SignalRaised), e),
        conf={"subject.name.strategy": topic_record_subject_name_strategy},
    )
    data = serializer(signal, SerializationContext(topic, MessageField.VALUE))
    received = through_kafka(settings, topic, signal.symbol.encode(), data)
    assert codec.decode(received) == signal


def test_our_codec_bytes_decode_with_confluent_avro_deserializer(settings, codec, signal):
    topic = settings.topic("inputs")
    data = codec.encode(topic, signal)
    received = through_kafka(settings, topic, signal.symbol.encode(), data)
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": settings.registry_url}))
    decoded = deserializer(received, SerializationContext(topic, MessageField.VALUE))
    assert SignalRaised(**decoded) == signal
    assert (
        unframe(received)[0]
        == SchemaRegistryClient({"url": settings.registry_url})
        .get_latest_version(f"{topic}-rlsizer.v1.SignalRaised")
        .schema_id
    )
