"""Replay the Kafka topics into the DuckDB warehouse, incrementally.

Every catalogue topic is read with a plain confluent-kafka consumer on a manual
assignment that starts at the offsets stored in the warehouse (no consumer-group
offsets are read or committed), so the warehouse alone knows what it has seen.
The replay stops at the true end of each partition, signalled by partition EOF:
tansu's ``get_watermark_offsets()`` can be short of the real high watermark, so
watermarks only size the progress bar.

Records the codec cannot decode become ``EventRejected`` rows in the ``dlq`` table
(with a deterministic ``event_id`` derived from topic/partition/offset, so
replaying them again stores them once) and are counted; the replay goes on.
Rows and the offsets they cover commit in one transaction per flush.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Final, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition
from tqdm import tqdm

from schemas.events import Event, EventRejected
from streams.settings import Settings
from streams.topics import CATALOG
from trainer.warehouse import TABLE_FOR_EVENT, TableSpec, Warehouse, default_path, open_warehouse

log = logging.getLogger(__name__)

REJECT_NAMESPACE: Final = uuid.UUID("6f1c2b64-9a55-4d8e-8a8e-3d1f5c1b7a10")


class Decoder(Protocol):
    def decode(self, data: bytes) -> Event: ...


class ReplayError(RuntimeError):
    """The replay could not reach the end of every partition."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayStats:
    events_by_topic: MappingProxyType[str, int]  # records read per topic this run
    new_rows: int  # rows added to the warehouse
    duplicates: int  # records whose event_id was already stored
    rejected: int  # records the codec could not decode (stored in dlq)
    tombstones: int  # null-valued records (compaction deletes), skipped
    seconds: float
    rebuilt_from: str | None = None  # why the warehouse was rebuilt, if it was

    @property
    def events(self) -> int:
        return sum(self.events_by_topic.values())

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        lines = [f"{topic}: {n}" for topic, n in sorted(self.events_by_topic.items())]
        lines.append(
            f"read {self.events} records in {self.seconds:.2f} s ({self.events_per_second:,.0f}/s): "
            f"{self.new_rows} new rows, {self.duplicates} duplicates skipped, {self.rejected} rejected, "
            f"{self.tombstones} tombstones"
        )
        if self.rebuilt_from:
            lines.append(f"warehouse rebuilt: {self.rebuilt_from}")
        return "\n".join(lines)


def rejected_event(msg: Message, kind: str, reason: str) -> EventRejected:
    """The dead-letter record for an undecodable message, with an id stable across replays."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    ts_type, ts_ms = msg.timestamp()
    ts_event = datetime.fromtimestamp(ts_ms / 1000, timezone.utc) if ts_ms and ts_ms > 0 else datetime.now(timezone.utc)
    return EventRejected(
        event_id=str(uuid.uuid5(REJECT_NAMESPACE, f"{topic}/{partition}/{offset}")),
        ts_event=ts_event,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        raw_key=msg.key(),
        raw_value=msg.value(),
        reason=reason or kind,
        error_type=kind,
    )


@dataclass(slots=True)
class _Pending:
    """Decoded rows not yet written, and the offsets they advance."""

    events: dict[TableSpec, list[Event]] = field(default_factory=lambda: defaultdict(list))
    sources: dict[TableSpec, list[tuple[str, int, int]]] = field(default_factory=lambda: defaultdict(list))
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    rows: int = 0

    def add(self, event: Event, topic: str, partition: int, offset: int) -> None:
        spec = TABLE_FOR_EVENT[type(event)]
        self.events[spec].append(event)
        self.sources[spec].append((topic, partition, offset))
        self.rows += 1

    def flush(self, warehouse: Warehouse) -> tuple[int, int]:
        if not self.offsets:
            return 0, 0
        batches = {spec: spec.to_arrow(events, self.sources[spec]) for spec, events in self.events.items()}
        result = warehouse.write(batches, self.offsets)
        self.events.clear()
        self.sources.clear()
        self.offsets.clear()
        self.rows = 0
        return result.new_rows, result.duplicates


def consumer_config(settings: Settings) -> dict[str, object]:
    return {
        **settings.kafka_config(),
        "group.id": "rlsizer-replay",  # required by librdkafka; never joined or committed
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 20,
        "fetch.min.bytes": 1,
        "queued.min.messages": 200_000,
        "fetch.message.max.bytes": 4 * 1024 * 1024,
    }


def assignment(consumer: Consumer, topics: list[str], stored: dict[tuple[str, int], int], timeout: float) -> tuple[list[TopicPartition], int]:
    """Partitions to read, from the stored offsets, and an estimate of records ahead."""
    try:
        metadata = consumer.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise ReplayError(f"cannot read topic metadata from the broker: {exc.args[0].str()}") from exc
    parts: list[TopicPartition] = []
    ahead = 0
    for topic in topics:
        meta = metadata.get(topic)
        if meta is None or meta.error is not None:
            log.warning("topic %s does not exist: nothing to replay from it", topic)
            continue
        for partition in sorted(meta.partitions):
            start = stored.get((topic, partition))
            tp = TopicPartition(topic, partition, OFFSET_BEGINNING if start is None else start)
            parts.append(tp)
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
                ahead += max(0, high - (low if start is None else max(start, low)))
            except KafkaException:
                pass  # the bar total is an estimate; EOF decides when to stop
    return parts, ahead


def replay(
    settings: Settings,
    codec: Decoder,
    *,
    warehouse_path: Path | None = None,
    progress: bool = True,
    rebuild: bool = False,
    batch_size: int = 10_000,
    flush_rows: int = 100_000,
    idle_timeout: float = 30.0,
) -> ReplayStats:
    """Read every catalogue topic from the stored offsets to EOF into the warehouse.

    Raises ``ReplayError`` if no record or EOF arrives for ``idle_timeout`` seconds
    while partitions are still unfinished (what was read so far is committed).
    """
    started = time.perf_counter()
    topics = [settings.topic(spec.short_name) for spec in CATALOG]
    path = Path(warehouse_path) if warehouse_path is not None else default_path(settings.data_dir)
    events_by_topic: Counter[str] = Counter()
    rejected = tombstones = new_rows = duplicates = 0
    with open_warehouse(path, rebuild=rebuild) as warehouse:
        consumer = Consumer(consumer_config(settings))
        try:
            parts, ahead = assignment(consumer, topics, warehouse.offsets(), timeout=idle_timeout)
            remaining = {(tp.topic, tp.partition) for tp in parts}
            if parts:
                consumer.assign(parts)
            pending = _Pending()
            last_progress = time.monotonic()
            with tqdm(total=ahead, unit="ev", unit_scale=True, desc="replay", disable=not progress, smoothing=0.1) as bar:
                while remaining:
                    messages = consumer.consume(batch_size, timeout=0.05)
                    if messages:
                        last_progress = time.monotonic()
                    elif time.monotonic() - last_progress > idle_timeout:
                        new, dup = pending.flush(warehouse)
                        raise ReplayError(
                            f"no record or end-of-partition for {idle_timeout:.0f} s; unfinished: "
                            + ", ".join(f"{t}[{p}]" for t, p in sorted(remaining))
                            + f" (committed {new_rows + new} new rows so far)"
                        )
                    read = 0
                    for msg in messages:
                        err = msg.error()
                        if err is not None:
                            if err.code() == KafkaError._PARTITION_EOF:
                                remaining.discard((msg.topic(), msg.partition()))
                                continue
                            if err.fatal() or not err.retriable():
                                raise ReplayError(f"consuming {msg.topic()}[{msg.partition()}]: {err.str()}")
                            log.warning("retriable consumer error: %s", err.str())
                            continue
                        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                        pending.offsets[(topic, partition)] = offset + 1
                        events_by_topic[topic] += 1
                        read += 1
                        value = msg.value()
                        if value is None:
                            tombstones += 1
                            continue
                        try:
                            event = codec.decode(value)
                        except Exception as exc:  # any undecodable record is dead-lettered, never fatal
                            kind = getattr(exc, "kind", type(exc).__name__)
                            event = rejected_event(msg, kind, str(exc))
                            rejected += 1
                        pending.add(event, topic, partition, offset)
                    bar.update(read)
                    if pending.rows >= flush_rows:
                        new, dup = pending.flush(warehouse)
                        new_rows, duplicates = new_rows + new, duplicates + dup
                new, dup = pending.flush(warehouse)
                new_rows, duplicates = new_rows + new, duplicates + dup
        finally:
            consumer.close()
        rebuilt_from = warehouse.rebuilt_from
    return ReplayStats(
        events_by_topic=MappingProxyType(dict(events_by_topic)),
        new_rows=new_rows,
        duplicates=duplicates,
        rejected=rejected,
        tombstones=tombstones,
        seconds=time.perf_counter() - started,
        rebuilt_from=rebuilt_from,
    )
