"""True end offsets: the offset each partition's next record will get, found by reading.

Every reader that must know where a partition ends (Faust's table recovery, the
worker's and the health monitor's lag, the adapter SDK starting at the end of the
decisions) asks here instead of trusting the broker's ListOffsets answer.

Why. tansu 0.6.0 answers ListOffsets (latest) wrongly, measured with plain clients
(``tests/integration/test_end_offsets.py`` keeps the measurement):

- memory storage: the first offset of the partition's *last batch* + 1. A 5-record
  batch at offsets 0-4 reports an end of 1; one more record, 6 (right); a 3-record
  batch at 6-8 then, 7.
- S3 storage (``rlsizer up`` without ``--memory``, and the test session): 1 once the
  first batch is written, whatever follows (85 records in 11 batches: still 1).

Its Fetch responses carry the right high watermark in both. So ``end_offsets``
fetches once from each partition, at the reported end less one (an offset that
exists whenever the partition holds anything, since the report is never past the
true end), and takes the largest of: the reported end, the high watermark of the
fetch response, and the offset after the last record it read. One short fetch per
partition, in parallel: ~20 ms for a whole topic on the embedded broker.

On a real Kafka cluster ListOffsets is right and the fetch only confirms it;
``RLSIZER_END_OFFSETS=broker`` (what ``docker-compose.yml`` sets) skips the fetch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

READ: Final = "read"
BROKER: Final = "broker"
MODES: Final = (READ, BROKER)

TP = tuple[str, int]


class EndOffsetsError(RuntimeError):
    """The broker could not be asked, or a partition did not answer in time."""


def reader_config(kafka_config: Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka settings for the one-fetch reader: no group, short fetch wait, EOF reported."""
    return {
        **kafka_config,
        "group.id": "rlsizer-end-offsets",  # required by librdkafka; never joined or committed
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 10,  # tansu holds a fetch at the log end for the whole wait
        "fetch.min.bytes": 1,
        "fetch.max.bytes": 1024 * 1024,
        "max.partition.fetch.bytes": 64 * 1024,  # one batch is enough: the response carries the high watermark
        "reconnect.backoff.ms": 20,
    }


def end_offsets(
    kafka_config: Mapping[str, Any],
    partitions: Iterable[TP],
    *,
    mode: str = READ,
    timeout: float = 10.0,
) -> dict[TP, int]:
    """The end offset (next offset to be written) of every ``(topic, partition)``.

    ``mode``: ``read`` (one fetch each, see the module doc) or ``broker`` (ListOffsets
    as answered; right on Kafka, short on tansu). Raises ``EndOffsetsError`` when
    the broker cannot be asked or a partition gives no answer within ``timeout``.
    """
    if mode not in MODES:
        raise ValueError(f"end offsets mode must be one of {', '.join(MODES)}, not {mode!r}")
    tps = sorted(set(partitions))
    if not tps:
        return {}
    consumer = Consumer(reader_config(kafka_config))
    try:
        return _end_offsets(consumer, tps, mode=mode, timeout=timeout)
    finally:
        consumer.close()


def _end_offsets(consumer: Consumer, tps: list[TP], *, mode: str, timeout: float) -> dict[TP, int]:
    deadline = time.monotonic() + timeout
    reported: dict[TP, tuple[int, int]] = {}
    for tp in tps:
        try:
            reported[tp] = consumer.get_watermark_offsets(TopicPartition(*tp), timeout=_left(deadline), cached=False)
        except KafkaException as exc:
            raise EndOffsetsError(
                f"cannot ask the broker for the offsets of {tp[0]}[{tp[1]}]: {exc.args[0].str()}"
            ) from exc
    if mode == BROKER:
        return {tp: high for tp, (_low, high) in reported.items()}
    consumer.assign([TopicPartition(t, p, max(low, high - 1)) for (t, p), (low, high) in reported.items()])
    last: dict[TP, int] = {}
    waiting = set(tps)
    while waiting:
        if time.monotonic() >= deadline:
            names = ", ".join(f"{t}[{p}]" for t, p in sorted(waiting))
            raise EndOffsetsError(f"no fetch answer within {timeout:g} s for {names}")
        for msg in consumer.consume(num_messages=1000, timeout=min(0.1, _left(deadline))):
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if topic is None or partition is None:  # consumed messages name theirs
                continue
            tp = (topic, partition)
            err = msg.error()
            if err is None:
                last[tp] = max(last.get(tp, -1), -1 if offset is None else offset)
                waiting.discard(tp)  # the response that carried it set the cached high watermark
            elif err.code() == KafkaError._PARTITION_EOF:
                waiting.discard(tp)
            elif err.fatal() or not err.retriable():
                raise EndOffsetsError(f"reading {tp[0]}[{tp[1]}]: {err.str()}")
    ends = {}
    for tp in tps:
        _low, fetched_high = consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
        ends[tp] = max(reported[tp][1], fetched_high, last.get(tp, -1) + 1)
    return ends


def _left(deadline: float) -> float:
    return max(0.001, deadline - time.monotonic())
