"""Dead letters: input that cannot be processed becomes an ``EventRejected`` record.

Nothing bad is dropped silently: the record keeps the raw key and value, where it
came from (topic, partition, offset) and an actionable reason; it goes to the
``dlq`` topic keyed by source topic.
"""

from __future__ import annotations

from datetime import UTC, datetime

from config.settings import Settings
from schemas.codec import EventCodec
from schemas.events import EventRejected
from streams.topics import event_key


def dead_letter(
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    error_type: str,
    *,
    ts_event: datetime | None = None,
) -> EventRejected:
    return EventRejected(
        ts_event=ts_event or datetime.now(UTC),
        source_topic=source_topic,
        source_partition=partition,
        source_offset=offset,
        raw_key=key,
        raw_value=value,
        reason=reason,
        error_type=error_type,
    )


def encode_dead_letter(codec: EventCodec, settings: Settings, rejected: EventRejected) -> tuple[str, bytes, bytes]:
    """``(topic, key, value)`` of the dead-letter record, for any producer."""
    topic = settings.topic("dlq")
    return topic, event_key(rejected), codec.encode(topic, rejected)
