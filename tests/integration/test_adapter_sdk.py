"""Adapter SDK against the real embedded broker and registry.

A small in-test decider thread stands in for the worker (answers each signal with
multiplier 0.5) so these tests check the SDK's contract, not the policy. Each
test module uses its own topic prefix.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from config.settings import Settings
from rlsizer.reference.data import load_dataset
from rlsizer.reference.loop import RunConfig, run
from schemas.catalog import schema_text
from schemas.codec import EventCodec, to_record
from schemas.events import BarClosed, OrderFilled, SignalRaised, SizeDecided, field_names
from streams.adapter_sdk import AdapterClient, DecisionTimeout
from streams.codec_factory import make_codec
from streams.consumer import make_consumer
from streams.producer import EventProducer, make_producer
from streams.topics import ensure_topics, new_topics

pytestmark = pytest.mark.integration
T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def asettings(settings: Settings) -> Settings:
    s = replace(settings, topic_prefix=f"sdk{uuid.uuid4().hex[:6]}", topic_partitions=2)
    admin = AdminClient(s.kafka_config())
    ensure_topics(admin, new_topics(s, include_schemas=False))
    return s


@pytest.fixture(scope="module")
def acodec(asettings: Settings) -> EventCodec:
    return make_codec(asettings)


def read_all(
    s: Settings,
    codec: EventCodec,
    topic: str,
    expect: int,
    timeout: float = 10.0,
    keep: Callable[[Any], bool] = lambda e: True,
) -> list:
    """Events of ``topic`` for which ``keep`` is true, until ``expect`` of them or ``timeout``."""
    consumer = make_consumer(s, f"t-{uuid.uuid4().hex}")
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.05):
                if msg.error() is None and keep(event := codec.decode(msg.value())):
                    out.append(event)
    finally:
        consumer.close()
    return out


@pytest.fixture(scope="module")
def decider(asettings: Settings, acodec: EventCodec) -> Iterator[list[str]]:
    """Answers every signal whose id does not start with 'mute-' with multiplier 0.5."""
    stop, seen = threading.Event(), []
    consumer = make_consumer(asettings, f"decider-{uuid.uuid4().hex}")
    topic = asettings.topic("inputs")
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    producer = EventProducer(make_producer(asettings), acodec, asettings)

    def loop() -> None:
        while not stop.is_set():
            first = consumer.poll(0.02)
            for msg in [first, *consumer.consume(500, 0)] if first is not None else []:
                if msg.error() is not None:
                    continue
                sig = acodec.decode(msg.value())
                if not isinstance(sig, SignalRaised):
                    continue
                seen.append(sig.signal_id)
                if sig.signal_id.startswith("mute-"):
                    continue
                producer.send(
                    SizeDecided(
                        ts_event=sig.ts_event,
                        signal_id=sig.signal_id,
                        symbol=sig.symbol,
                        strategy_id=sig.strategy_id,
                        multiplier=0.5,
                        qty=sig.base_qty * 0.5,
                        policy="RULES",
                        reason="test decider",
                        latency_us=1,
                    )
                )
            producer.flush(5)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield seen
    stop.set()
    thread.join(5)
    consumer.close()


def a_signal(signal_id: str, **kw: object) -> SignalRaised:
    values: dict[str, object] = dict(
        ts_event=T0,
        signal_id=signal_id,
        strategy_id="S1",
        symbol="AAPL",
        side="BUY",
        price=101.0,
        atr=2.0,
        base_qty=10.0,
        stop_price=97.0,
        adapter="test",
    )
    values.update(kw)
    return SignalRaised(**values)  # type: ignore[arg-type]


def test_signal_from_confluent_avro_serializer_is_read_by_our_codec(asettings: Settings, acodec: EventCodec) -> None:
    """A bot using Confluent's standard serializer (what C#/Java/Go clients do) is understood, with the
    inputs topic's subject naming (TopicRecordNameStrategy)."""
    topic = asettings.topic("inputs")
    sig = a_signal(f"mute-{uuid.uuid4().hex[:8]}", attrs={"bot": "confluent"})
    serializer = AvroSerializer(
        SchemaRegistryClient({"url": asettings.registry_url}),
        schema_text(SignalRaised),
        lambda e, _c: to_record(field_names(SignalRaised), e),
        conf={"subject.name.strategy": topic_record_subject_name_strategy},
    )
    producer = make_producer(asettings)
    producer.produce(topic, key=b"AAPL", value=serializer(sig, SerializationContext(topic, MessageField.VALUE)))
    assert producer.flush(10) == 0
    got = read_all(asettings, acodec, topic, expect=1, keep=lambda e: e.signal_id == sig.signal_id)
    assert got == [sig]


def test_sdk_bytes_are_read_by_confluent_avro_deserializer(asettings: Settings, acodec: EventCodec) -> None:
    fill = OrderFilled(
        ts_event=T0,
        signal_id="f-1",
        order_id="f-1:entry",
        symbol="MSFT",
        side="SELL",
        qty=3.0,
        price=30.5,
        fee=0.01,
        leg="ENTRY",
    )
    with AdapterClient(asettings, acodec, adapter_name="t") as client:
        client.publish_fill(fill)
        client.flush(10)
    consumer = make_consumer(asettings, f"t-{uuid.uuid4().hex}")
    topic = asettings.topic("inputs")
    consumer.assign([TopicPartition(topic, p, 0) for p in range(asettings.topic_partitions)])
    try:
        msg = next(
            m
            for _ in range(100)
            for m in consumer.consume(10, 0.05)
            if m.error() is None and isinstance(acodec.decode(m.value()), OrderFilled)
        )
    finally:
        consumer.close()
    record = AvroDeserializer(SchemaRegistryClient({"url": asettings.registry_url}))(
        msg.value(), SerializationContext(topic, MessageField.VALUE)
    )
    assert (
        msg.key() == b"MSFT" and record["order_id"] == "f-1:entry" and record["leg"] == "ENTRY" and record["qty"] == 3.0
    )


def test_request_decision_round_trip_timeout_and_resend(
    asettings: Settings, acodec: EventCodec, decider: list[str]
) -> None:
    with AdapterClient(asettings, acodec, adapter_name="t") as client:
        batch = [a_signal(f"rt-{i}-{uuid.uuid4().hex[:6]}", base_qty=10.0 + i) for i in range(200)]
        answers = client.request_decisions(batch, timeout_s=10.0)
        assert [a.signal_id for a in answers] == [s.signal_id for s in batch]
        assert all(
            isinstance(a, SizeDecided) and a.qty == s.base_qty * 0.5 for a, s in zip(answers, batch, strict=True)
        )

        start = time.monotonic()
        muted = a_signal(f"mute-{uuid.uuid4().hex[:8]}")
        answer = client.request_decision(muted, timeout_s=0.3)
        assert isinstance(answer, DecisionTimeout) and answer.signal_id == muted.signal_id
        assert 0.3 <= time.monotonic() - start < 2.0
        assert client.qty_for(muted, answer) == muted.base_qty  # the documented default: multiplier 1.0

        again = client.request_decision(batch[0], timeout_s=0.05)  # same signal_id: same decision, at once
        assert again == answers[0]


def test_reference_loop_trades_the_decided_quantity(
    asettings: Settings, acodec: EventCodec, decider: list[str]
) -> None:
    frame = load_dataset("EURUSD").iloc[:260]
    cfg = RunConfig(symbol="EURUSD", interval="1h", run_id=uuid.uuid4().hex[:8], base_qty=1000.0, timeout_s=5.0)
    with AdapterClient(asettings, acodec, adapter_name="reference") as client:
        summary = run(frame, cfg, client, progress=False)
    assert summary.bars == 260 and summary.signals > 0 and summary.timeouts == 0
    assert summary.policies == {"RULES": summary.signals}
    expected = summary.entries + summary.exits
    fills = read_all(
        asettings,
        acodec,
        asettings.topic("inputs"),
        expect=expected + 1,
        timeout=1.0,
        keep=lambda f: isinstance(f, OrderFilled) and cfg.run_id in f.signal_id,
    )
    assert len(fills) == expected and summary.entries == summary.exits
    assert {f.qty for f in fills} == {500.0}  # decision qty (0.5 x base), not base_qty
    bars = read_all(
        asettings, acodec, asettings.topic("inputs"), expect=260, timeout=5.0, keep=lambda e: isinstance(e, BarClosed)
    )
    assert [b.ts_event for b in bars if b.symbol == "EURUSD"][:2] == [
        frame.index[0] + timedelta(hours=1),
        frame.index[1] + timedelta(hours=1),
    ]
