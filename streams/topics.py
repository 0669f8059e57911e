"""The topic catalogue and its explicit, idempotent creation.

**One ordered input topic.** A bot publishes everything the worker reads of a
symbol -- ``BarClosed``, ``SignalRaised``, ``OrderFilled`` -- to ``inputs``, keyed by
the symbol (murmur2, as Java clients): one symbol's inputs are one partition, in the
order the bot sent them, and the worker reads that partition in offset order. So a
decision depends only on what precedes its signal in the log, live and in replay
alike (docs/DETERMINISM.md). Several record types share the topic, so its subjects
follow Confluent's ``TopicRecordNameStrategy`` (``rlsizer.inputs-rlsizer.v1.BarClosed``);
every other topic carries one type under ``TopicNameStrategy`` (``rlsizer.decisions-value``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from config.settings import Settings
from schemas.codec import topic_record_subject, topic_value_subject
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


@dataclass(frozen=True, slots=True)
class TopicSpec:
    short_name: str
    event_types: tuple[type[Event], ...]
    key_field: str
    compacted: bool = False

    @property
    def mixed(self) -> bool:
        """Carries several record types (subjects by ``TopicRecordNameStrategy``)."""
        return len(self.event_types) > 1


INPUT_EVENTS: Final = (BarClosed, SignalRaised, OrderFilled)
"""What a bot publishes, all to the ``inputs`` topic, keyed by symbol."""

CATALOG: Final[tuple[TopicSpec, ...]] = (
    TopicSpec("inputs", INPUT_EVENTS, "symbol"),
    TopicSpec("features", (FeaturesComputed,), "symbol"),
    TopicSpec("decisions", (SizeDecided,), "symbol"),
    TopicSpec("outcomes", (TradeClosed,), "symbol"),
    TopicSpec("models", (ModelPublished,), "model_name", compacted=True),
    TopicSpec("health", (HealthChecked,), "component"),
    TopicSpec("dlq", (EventRejected,), "source_topic"),
)
SCHEMAS_TOPIC: Final = "_schemas"
TOPIC_FOR_EVENT: Final[dict[type[Event], TopicSpec]] = {
    event_type: spec for spec in CATALOG for event_type in spec.event_types
}
_MIXED_TOPICS: Final = frozenset(spec.short_name for spec in CATALOG if spec.mixed)


def worker_group_id(settings: Settings) -> str:
    """The workers' consumer group and Faust app id (one per topic namespace)."""
    return f"{settings.topic_prefix or 'rlsizer'}-worker"


def topic_name(settings: Settings, event_type: type[Event]) -> str:
    return settings.topic(TOPIC_FOR_EVENT[event_type].short_name)


def inputs_topic(settings: Settings) -> str:
    return settings.topic("inputs")


def subject_for(topic: str, event_type: type[Event]) -> str:
    """The registry subject of ``event_type``'s schema on ``topic`` (see the module doc)."""
    short = topic.rsplit(".", 1)[-1]
    if short in _MIXED_TOPICS:
        return topic_record_subject(topic, event_type)
    return topic_value_subject(topic)


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
