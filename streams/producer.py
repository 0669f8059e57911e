"""Producing events with confluent-kafka: topic and key come from the catalogue.

``make_producer`` is tuned for the embedded broker and real clusters alike:
``acks=all``, a small linger, murmur2 partitioning (as Java clients and aiokafka,
so bars, signals, fills and decisions of a symbol share a partition number), and **no** idempotence (tansu rejects the
idempotent producer's init, see ARCHITECTURE.md "Delivery guarantees"; consumers
deduplicate on ``event_id`` / ``signal_id`` instead).
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Producer

from config.settings import Settings
from schemas.codec import EventCodec
from schemas.events import Event
from streams.topics import event_key, topic_name


class ProduceError(RuntimeError):
    """A record could not be delivered (the broker's reason is in the message)."""


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        **settings.kafka_config(),
        "acks": "all",
        "linger.ms": 2,
        "enable.idempotence": False,
        "compression.type": "none",
        # Java's and aiokafka's partitioner: every producer puts a symbol on the same partition
        "partitioner": "murmur2_random",
    }
    conf.update(overrides)
    return conf


def make_producer(settings: Settings, **overrides: Any) -> Producer:
    return Producer(producer_config(settings, **overrides))


class EventProducer:
    """Send catalogue events: ``send(event)`` picks topic and key; ``flush()`` waits for delivery.

    Delivery failures are collected and raised by the next ``flush`` so a caller
    never believes an undelivered event was published.
    """

    def __init__(self, producer: Producer, codec: EventCodec, settings: Settings) -> None:
        self._producer = producer
        self._codec = codec
        self._settings = settings
        self._errors: list[str] = []

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def send(self, event: Event, *, topic: str | None = None) -> None:
        target = topic or topic_name(self._settings, type(event))
        self.send_raw(target, event_key(event), self._codec.encode(target, event))

    def send_raw(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: serve callbacks and retry
                self._producer.poll(0.05)
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self._producer.flush(timeout)
        if remaining:
            raise ProduceError(f"{remaining} record(s) still undelivered after {timeout}s")
        if self._errors:
            errors, self._errors = self._errors, []
            raise ProduceError(f"{len(errors)} record(s) failed: {'; '.join(errors[:5])}")
