"""Replay throughput against raw confluent-kafka consumption of the same records.

Produces ``--events`` small events (bars, signals, decisions, health) to a fresh
topic prefix, then in one run (1) consumes every partition to EOF with a bare
confluent-kafka consumer that only touches each value, and (2) replays the same
topics into a fresh DuckDB warehouse (decode with the codec, Arrow batches,
upserts). Prints events/s of both and their ratio.

    .venv/bin/python bench/bench_replay.py                 # starts its own embedded stack (S3 storage)
    .venv/bin/python bench/bench_replay.py --memory        # tansu on memory storage
    .venv/bin/python bench/bench_replay.py --external      # the cluster from RLSIZER_* settings
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from rlsizer.stack import EmbeddedStack, StackPorts
from schemas.codec import EventCodec, InMemoryRegistry
from schemas.events import BarClosed, Event, HealthChecked, SignalRaised, SizeDecided
from streams.settings import Settings
from streams.topics import CATALOG, ensure_topics, event_key, new_topics, topic_name
from trainer.replay import consumer_config, replay

T0 = datetime(2024, 1, 2, tzinfo=timezone.utc)


def small_event(i: int) -> Event:
    ts = T0 + timedelta(seconds=i)
    symbol = f"SYM{i % 16}"
    kind = i % 4
    if kind == 0:
        return BarClosed(symbol=symbol, interval="1m", open=100, high=101, low=99, close=100.5, volume=3, ts_event=ts, ts_init=ts)
    if kind == 1:
        return SignalRaised(signal_id=f"s{i}", strategy_id="S2", symbol=symbol, side="SELL", price=100, atr=1, base_qty=1, ts_event=ts, ts_init=ts)
    if kind == 2:
        return SizeDecided(signal_id=f"s{i - 1}", symbol=symbol, strategy_id="S2", multiplier=1.0, qty=1.0, policy="RULES", reason="bench", latency_us=100, ts_event=ts, ts_init=ts)
    return HealthChecked(component=f"c{i % 3}", check="lag", status="OK", detail="", ts_event=ts, ts_init=ts)


def produce(settings: Settings, codec: EventCodec, n: int) -> float:
    producer = Producer({**settings.kafka_config(), "linger.ms": 20, "batch.num.messages": 10_000, "queue.buffering.max.messages": 500_000})
    started = time.perf_counter()
    for i in range(n):
        event = small_event(i)
        topic = topic_name(settings, type(event))
        while True:
            try:
                producer.produce(topic, codec.encode(topic, event), event_key(event))
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120) != 0:
        raise SystemExit("producer could not deliver every record within 120 s")
    return time.perf_counter() - started


def raw_consume(settings: Settings) -> tuple[int, float]:
    consumer = Consumer(consumer_config(settings))
    metadata = consumer.list_topics(timeout=10).topics
    parts = [
        TopicPartition(settings.topic(spec.short_name), p, OFFSET_BEGINNING)
        for spec in CATALOG
        for p in metadata[settings.topic(spec.short_name)].partitions
    ]
    remaining = {(tp.topic, tp.partition) for tp in parts}
    started = time.perf_counter()
    consumer.assign(parts)
    count = size = 0
    while remaining:
        for msg in consumer.consume(10_000, timeout=0.05):
            if msg.error() is None:
                count += 1
                size += len(msg.value())
            elif msg.error().code() == KafkaError._PARTITION_EOF:
                remaining.discard((msg.topic(), msg.partition()))
    seconds = time.perf_counter() - started
    consumer.close()
    return count, seconds


@contextlib.contextmanager
def cluster(args: argparse.Namespace) -> Iterator[Settings]:
    if args.external:
        yield Settings.from_env()
        return
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp, EmbeddedStack(Path(tmp), ports=StackPorts.free(), memory=args.memory) as stack:
        yield stack.settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--memory", action="store_true", help="embedded tansu on memory storage instead of S3")
    parser.add_argument("--external", action="store_true", help="use the cluster from RLSIZER_* settings")
    args = parser.parse_args()
    with cluster(args) as base, tempfile.TemporaryDirectory(prefix="bench-wh-") as wh_dir:
        settings = dataclasses.replace(base, topic_prefix=f"bench_{uuid.uuid4().hex[:8]}")
        admin = AdminClient(settings.kafka_config())
        ensure_topics(admin, new_topics(settings, include_schemas=False))
        codec = EventCodec(InMemoryRegistry())
        produced_s = produce(settings, codec, args.events)
        print(f"produced {args.events:,} events in {produced_s:.2f} s ({args.events / produced_s:,.0f}/s)")

        raw_n, raw_s = raw_consume(settings)
        stats = replay(settings, codec, warehouse_path=Path(wh_dir) / "wh.duckdb", progress=False)
        if raw_n != args.events or stats.events != args.events or stats.new_rows != args.events:
            raise SystemExit(f"count mismatch: produced {args.events}, raw read {raw_n}, replay read {stats.events}, stored {stats.new_rows}")
        raw_rate, replay_rate = raw_n / raw_s, stats.events / stats.seconds
        print(f"raw confluent-kafka to EOF: {raw_n:,} events in {raw_s:.2f} s = {raw_rate:,.0f} events/s")
        print(f"replay into DuckDB:         {stats.events:,} events in {stats.seconds:.2f} s = {replay_rate:,.0f} events/s")
        print(f"ratio replay/raw: {replay_rate / raw_rate:.3f} (target >= 0.5)")


if __name__ == "__main__":
    main()
