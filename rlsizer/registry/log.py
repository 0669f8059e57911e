"""The registry's durable log: the single-partition, compacted ``_schemas`` Kafka topic.

The start-up read goes to partition EOF, not to the reported end offset (tansu
can report it short); later reads go through a NOOP marker record of our own. Appends are flushed and their delivery checked before they count, so an
answered registration is never lost by a restart.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from rlsizer.registry.state import LogRecord
from streams.topics import SCHEMAS_TOPIC, ensure_topics

_NOOP_KEY = b'{"keytype":"NOOP","magic":0}'


class SchemaLogError(RuntimeError):
    """The ``_schemas`` topic cannot be read or written."""


class SchemaLog:
    def __init__(self, kafka_config: Mapping[str, str], *, topic: str = SCHEMAS_TOPIC, replication: int = 1) -> None:
        self._config: dict[str, str | int | float | bool] = dict(kafka_config)
        self.topic = topic
        self._replication = replication
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None

    def open(self, timeout: float = 30.0) -> list[LogRecord]:
        """Create the topic if missing, connect, and return every record up to the true end."""
        admin = AdminClient(self._config)
        try:
            ensure_topics(
                admin, [NewTopic(self.topic, 1, self._replication, config={"cleanup.policy": "compact"})], timeout
            )
            partitions = admin.list_topics(self.topic, timeout=timeout).topics[self.topic].partitions
        except KafkaException as exc:
            raise SchemaLogError(f"cannot create or describe topic {self.topic!r}: {exc}") from exc
        if len(partitions) != 1:
            raise SchemaLogError(f"topic {self.topic!r} must have exactly 1 partition, has {len(partitions)}")
        self._consumer = Consumer(
            self._config
            | {
                "group.id": "rlsizer-schema-registry",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 20,
                "log_level": 3,
            }
        )
        self._consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        self._producer = Producer(self._config | {"acks": "all", "linger.ms": 0, "log_level": 3})
        return self._read(timeout=timeout)

    def sync(self, timeout: float = 30.0) -> list[LogRecord]:
        """Every record appended so far by anyone, read through a marker we write (Confluent's NOOP).

        Deterministic where "what is fetched now" is not: whatever another registry
        wrote before the marker is in the answer.
        """
        marker = LogRecord(_NOOP_KEY, json.dumps({"nonce": uuid.uuid4().hex}).encode())
        offset = self.append(marker, timeout)
        return self._read(until_offset=offset, timeout=timeout)

    def _read(self, *, until_offset: int | None = None, timeout: float) -> list[LogRecord]:
        """Records until partition EOF (``until_offset`` None) or until that offset has been read."""
        if self._consumer is None:
            raise SchemaLogError("schema log is not open")
        records: list[LogRecord] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SchemaLogError(f"did not reach the end of topic {self.topic!r} within {timeout:.0f}s")
            msg = self._consumer.poll(min(remaining, 0.5))
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    if until_offset is None:
                        return records
                    continue
                if err.fatal() or not err.retriable():
                    raise SchemaLogError(f"reading {self.topic!r}: {err}")
                continue
            key = msg.key()
            if key is not None and key != _NOOP_KEY:
                records.append(LogRecord(key, msg.value()))
            offset = msg.offset()
            if until_offset is not None and offset is not None and offset >= until_offset:
                return records

    def append(self, record: LogRecord, timeout: float = 30.0) -> int:
        """Write one record, wait until the broker has it, and return its offset."""
        if self._producer is None:
            raise SchemaLogError("schema log is not open")
        failures: list[KafkaError] = []
        offsets: list[int] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failures.append(err)
            elif (offset := msg.offset()) is not None:  # a delivered record has its offset
                offsets.append(offset)

        self._producer.produce(self.topic, key=record.key, value=record.value, partition=0, on_delivery=delivered)
        if self._producer.flush(timeout) > 0:
            raise SchemaLogError(f"write to {self.topic!r} not acknowledged within {timeout:.0f}s")
        if failures or not offsets:
            raise SchemaLogError(f"write to {self.topic!r} failed: {failures[0] if failures else 'no delivery report'}")
        return offsets[0]

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None
