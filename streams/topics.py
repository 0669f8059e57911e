"""The topic catalogue and its explicit, idempotent creation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.events import (
    BarClosed,
    Event,
    EventRejected,
    FeaturesComputed,
    HealthChecked,
    ModelPublished,
    OrderFilled,
    SignalRaised,
    SizeDecided,
    TradeClosed,
)
from streams.settings import Settings


@dataclass(frozen=True, slots=True)
class TopicSpec:
    short_name: str
    event_type: type[Event] | None
    key_field: str
    compacted: bool = False
    single_partition: bool = False


CATALOG: Final[tuple[TopicSpec, ...]] = (
    TopicSpec("bars", BarClosed, "symbol"),
    TopicSpec("signals", SignalRaised, "symbol"),
    TopicSpec("features", FeaturesComputed, "symbol"),
    TopicSpec("decisions", SizeDecided, "symbol"),
    TopicSpec("fills", OrderFilled, "symbol"),
    TopicSpec("outcomes", TradeClosed, "symbol"),
    TopicSpec("models", ModelPublished, "model_name", compacted=True),
    TopicSpec("health", HealthChecked, "component"),
    TopicSpec("dlq", EventRejected, "source_topic"),
)
SCHEMAS_TOPIC: Final = "_schemas"
TOPIC_FOR_EVENT: Final[dict[type[Event], TopicSpec]] = {
    spec.event_type: spec for spec in CATALOG if spec.event_type is not None
}


def worker_group_id(settings: Settings) -> str:
    """The workers' consumer group and Faust app id (one per topic namespace)."""
    return f"{settings.topic_prefix or 'rlsizer'}-worker"


def topic_name(settings: Settings, event_type: type[Event]) -> str:
    return settings.topic(TOPIC_FOR_EVENT[event_type].short_name)


def event_key(event: Event) -> bytes:
    return str(getattr(event, TOPIC_FOR_EVENT[type(event)].key_field)).encode()


def new_topics(settings: Settings, *, include_schemas: bool = True) -> list[NewTopic]:
    topics = []
    for spec in CATALOG:
        config = {"cleanup.policy": "compact"} if spec.compacted else {}
        partitions = 1 if spec.compacted else settings.topic_partitions
        topics.append(NewTopic(settings.topic(spec.short_name), partitions, settings.topic_replication, config=config))
    if include_schemas:
        topics.append(NewTopic(SCHEMAS_TOPIC, 1, settings.topic_replication, config={"cleanup.policy": "compact"}))
    return topics


def ensure_topics(admin: AdminClient, topics: list[NewTopic], timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Keeps ``admin`` referenced until every future resolves (tansu drops requests
    from an AdminClient that is garbage-collected early).
    """
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [t for t in topics if t.topic not in existing]
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    return created
