"""Replay throughput against raw confluent-kafka consumption of the same records.

Produces ``--events`` events of a realistic mix (per signal: 4 bars, the signal,
its 80 features, the decision, 2 fills, the outcome) to a fresh
topic prefix, then in one run (1) consumes every partition to EOF with a bare
confluent-kafka consumer that only touches each value, and (2) replays the same
topics into a fresh DuckDB warehouse (decode with the codec, Arrow batches, a
bulk load: rows appended, written straight into the file in small row groups, then
repeats removed; no index). Prints events/s of both, their ratio, and where the
replay's time went. On the shared 2-core machine (4 runs alternated with the code
before the round that dropped the index): 0.35-0.44 of raw, against 0.30-0.37; the
tail after the last write fell from ~0.5 s to ~0.1 s. The next round (map shapes
compared as masked words, metadata read while the warehouse opens): 0.25-0.47 in 6
runs alternated with the code before it (0.28-0.38), then 0.26-0.41 in 4 more.
The round after (columnar fields read in place, fewer DuckDB calls per write: offline
the decode took ~20% and the writes ~25% less CPU), 12 pairs of runs alternated with
the code before: replay 1.01-1.63 s (median 1.43) against 1.19-2.11 s (median 1.49), ratios
0.29-0.42 (median 0.37) against 0.26-0.44 (median 0.37): no change the noise lets
one see. Decoding on a thread of its own (consume -> decode -> write) was no faster
(4 pairs: 1.22-1.59 s against 1.24-1.49 s; with the writes left out, 1.09-1.14 s
against 0.90-1.06 s decoding on the consuming thread): consuming and decoding both
hold the GIL for most of their time.
Figures swing by 20-30% between runs.
Both clocks start before their consumer is made (until 2026-11-26 the raw one started
after ``list_topics``, so connecting and reading metadata, ~15-55 ms, counted against the
replay only); the replay's consumer then waited out librdkafka's 50 ms "sparse connect"
pause on its first request, now ~10 ms (``trainer.warehouse.replay.consumer_config``). 8 alternated
pairs with both clocks so: replay 0.84-0.94 s (median 0.88) with the shorter pause,
0.88-1.08 s (median 0.91) without; ratios 0.43-0.49 and 0.42-0.53 (the raw read gets
the shorter pause too).
The round after (a new file assigned its partitions while it is made, feature maps decoded
without a column-major copy), 6 pairs alternated with the code before it: replay median
1.05 s against 1.18 s, decode 0.29-0.37 s against 0.39-0.70 s, ratios 0.29-0.46 against
0.29-0.44 (a noisier day).
Since then both reads pause a partition at its end (``trainer.warehouse.replay``, "End"), so neither
keeps the broker answering fetches for finished partitions; 6 more pairs against the code of
the morning: replay median 0.99 s against 1.12 s, ratios 0.40-0.52 (3 of 6 at or above 0.5)
against 0.30-0.48.
Until then the raw read consumed 10,000 messages per call, which alone made it ~25% slower
(0.51 s against 0.39-0.40 s with 500-2,000; each call waits for its batch to fill): every
ratio printed before was against that slower baseline. Both reads now consume
``trainer.warehouse.replay.CONSUME_BATCH`` (2,000) per call.
Both reads consume with Python's automatic garbage collection off
(``trainer.warehouse.replay.young_collections_only``; confluent-kafka's messages are tracked
objects and set off full collections): 4 alternated rounds, replay median 0.72 s against
0.90 s with it on, raw 0.33 s against 0.40 s; ratio 0.46 against 0.45.
pandas is imported before timing: pyarrow imports it on its first numpy conversion
(about 0.3 s, once per process), which is not throughput.
``--decoder fastavro`` replays with ``FastavroBatches`` instead of the codec's columnar
decoder (``schemas.columnar``): fastavro's reader on the same batches, each record into a
dict, the dicts into one Arrow array per field, then the same column-wise rules and the
same fallback to ``decode``: what the replay would do without the hand-written decoder.

    .venv/bin/python bench/bench_replay.py                 # starts its own embedded stack (S3 storage)
    .venv/bin/python bench/bench_replay.py --memory        # tansu on memory storage
    .venv/bin/python bench/bench_replay.py --external      # the cluster from RLSIZER_* settings
    .venv/bin/python bench/bench_replay.py --decoder fastavro   # fastavro's reader instead of schemas.columnar
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import io
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pandas  # noqa: F401  (see the docstring: a one-off import, kept out of the timing)
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from config.settings import Settings
from rlsizer.stack.embedded import EmbeddedStack, StackPorts
from schemas.catalog import schema_dict
from schemas.codec import DecodedBatch, EventCodec, InMemoryRegistry, unframe
from schemas.events import BarClosed, Event, FeaturesComputed, OrderFilled, SignalRaised, SizeDecided, TradeClosed
from schemas.rules import surely_valid
from streams.topics import CATALOG, ensure_topics, event_key, new_topics, topic_name
from trainer.warehouse.replay import CONSUME_BATCH, consumer_config, replay, young_collections_only

T0 = datetime(2024, 1, 2, tzinfo=UTC)


FEATURES: tuple[str, ...] = tuple(f"f{j:02d}" for j in range(80))  # as many as the live feature set
CYCLE = 10  # events per traded signal: 4 bars, signal, features, decision, 2 fills, outcome


def cycle_event(i: int) -> Event:
    """Event ``i`` of a realistic stream: each signal brings bars, its features, a decision, fills and an outcome."""
    n, k = divmod(i, CYCLE)
    ts = T0 + timedelta(seconds=i)
    symbol, sid = f"SYM{n % 16}", f"s{n}"
    if k < 4:
        return BarClosed(
            symbol=symbol,
            interval="1m",
            open=100,
            high=101 + k,
            low=99,
            close=100.5,
            volume=3 + k,
            bid=100.4,
            ask=100.6,
            ts_event=ts,
            ts_init=ts,
        )
    if k == 4:
        return SignalRaised(
            signal_id=sid,
            strategy_id=f"S{n % 14 + 1}",
            symbol=symbol,
            side="SELL",
            price=100,
            atr=1,
            score=0.3,
            base_qty=1,
            stop_price=101.0,
            adapter="bench",
            attrs={"tf": "1m"},
            ts_event=ts,
            ts_init=ts,
        )
    if k == 5:
        return FeaturesComputed(
            signal_id=sid,
            symbol=symbol,
            strategy_id="S2",
            strategy_type="EmaCross",
            feature_set="fs1",
            features={f: (n * 31 + j) % 97 / 7.0 for j, f in enumerate(FEATURES)},
            ts_event=ts,
            ts_init=ts,
        )
    if k == 6:
        return SizeDecided(
            signal_id=sid,
            symbol=symbol,
            strategy_id="S2",
            multiplier=1.25,
            qty=1.25,
            policy="MODEL",
            reason="bench",
            model_version="v1",
            latency_us=100,
            ts_event=ts,
            ts_init=ts,
        )
    if k in (7, 8):
        leg = "ENTRY" if k == 7 else "EXIT"
        return OrderFilled(
            signal_id=sid,
            order_id=f"o{n}-{k}",
            symbol=symbol,
            side="SELL",
            qty=1.25,
            price=100 + k - 7,
            fee=0.01,
            leg=leg,
            exit_reason=None if k == 7 else "target",
            ts_event=ts,
            ts_init=ts,
        )
    entry = ts - timedelta(seconds=2)
    return TradeClosed(
        signal_id=sid,
        symbol=symbol,
        strategy_id="S2",
        side="SELL",
        qty=1.25,
        entry_price=100,
        exit_price=101,
        entry_ts=entry,
        exit_ts=ts,
        pnl=-1.25,
        fees=0.02,
        r_multiple=-1.0,
        mae_r=-1.0,
        mfe_r=0.2,
        exit_reason="stop",
        ts_event=ts,
        ts_init=ts,
    )


def _arrow_type(avro_type: Any) -> pa.DataType:
    """The Arrow type ``schemas.columnar`` gives a field of ``avro_type``."""
    if isinstance(avro_type, list):
        return _arrow_type(next(t for t in avro_type if t != "null"))
    if isinstance(avro_type, dict):
        if avro_type.get("logicalType") == "timestamp-micros":
            return pa.timestamp("us")
        if avro_type["type"] == "enum":
            return pa.string()
        if avro_type["type"] == "map":
            return pa.map_(pa.string(), _arrow_type(avro_type["values"]))
    return {"string": pa.string(), "bytes": pa.binary(), "double": pa.float64(), "long": pa.int64(), "int": pa.int32()}[
        avro_type
    ]


class FastavroBatches:
    """``EventCodec.decode_batch`` with fastavro's reader in place of ``schemas.columnar`` (the bench's other leg).

    Each record of one of our own schemas is read with ``fastavro.schemaless_reader``
    (schema parsed once) into a dict, the dicts become one Arrow array per field, and
    the rows go through the same column-wise rules; every other message, and every row
    fastavro or the rules refuse, goes through ``decode``, as in the codec.
    """

    def __init__(self, codec: EventCodec, event_types: Sequence[type[Event]]) -> None:
        self.codec = codec
        self._types = {codec.schema_id("bench", t): t for t in event_types}  # InMemoryRegistry: one id per schema text
        self._parsed = {t: fastavro.parse_schema(schema_dict(t)) for t in event_types}
        self._fields = {t: [(f["name"], _arrow_type(f["type"])) for f in schema_dict(t)["fields"]] for t in event_types}

    def decode(self, data: bytes) -> Event:
        return self.codec.decode(data)

    def decode_batch(self, datas: Sequence[bytes]) -> DecodedBatch:
        groups: dict[type[Event], tuple[list[int], list[dict[str, Any]]]] = {}
        slow: list[int] = []
        for i, data in enumerate(datas):
            try:
                schema_id, body = unframe(data)
                event_type = self._types[schema_id]
                record = fastavro.schemaless_reader(io.BytesIO(body), self._parsed[event_type], None)
            except Exception:  # decode gives the outcome and its reason
                slow.append(i)
                continue
            positions, records = groups.setdefault(event_type, ([], []))
            positions.append(i)
            records.append(record)
        columns: dict[type[Event], tuple[np.ndarray, dict[str, pa.Array]]] = {}
        for event_type, (positions, records) in groups.items():
            arrays = {}
            for name, arrow_type in self._fields[event_type]:
                values = [r[name] for r in records]
                arrays[name] = pa.array(
                    [list(v.items()) for v in values] if pa.types.is_map(arrow_type) else values, arrow_type
                )
            good = surely_valid(event_type, arrays)
            index = np.asarray(positions, np.int64)
            if good.any():
                keep = pa.array(good)
                columns[event_type] = (index[good], {n: a.filter(keep) for n, a in arrays.items()})
            slow += index[~good].tolist()
        singles: list[tuple[int, Event | Exception]] = []
        for i in sorted(slow):
            try:
                singles.append((i, self.codec.decode(datas[i])))
            except Exception as exc:  # the replay dead-letters it
                singles.append((i, exc))
        return DecodedBatch(columns, singles)


def produce(settings: Settings, codec: EventCodec, n: int) -> float:
    producer = Producer(
        {
            **settings.kafka_config(),
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 500_000,
        }
    )
    started = time.perf_counter()
    for i in range(n):
        event = cycle_event(i)
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
    """Read every catalogue partition to EOF, touching each value; timed from making the consumer, as the replay is."""
    started = time.perf_counter()
    consumer = Consumer(consumer_config(settings))
    metadata = consumer.list_topics(timeout=10).topics
    parts = [
        TopicPartition(settings.topic(spec.short_name), p, OFFSET_BEGINNING)
        for spec in CATALOG
        for p in metadata[settings.topic(spec.short_name)].partitions
    ]
    remaining = {(tp.topic, tp.partition) for tp in parts}
    consumer.assign(parts)
    count = size = 0
    with young_collections_only():  # the replay consumes with automatic collection off too (trainer.warehouse.replay)
        while remaining:
            for msg in consumer.consume(
                CONSUME_BATCH, timeout=0.05
            ):  # the replay's batches (see trainer.warehouse.replay)
                if msg.error() is None:
                    count += 1
                    size += len(msg.value())
                elif msg.error().code() == KafkaError._PARTITION_EOF:
                    remaining.discard((msg.topic(), msg.partition()))
                    consumer.pause(
                        [TopicPartition(msg.topic(), msg.partition())]
                    )  # as the replay does at a partition's end
    seconds = time.perf_counter() - started
    consumer.close()
    return count, seconds


@contextlib.contextmanager
def cluster(args: argparse.Namespace) -> Iterator[Settings]:
    if args.external:
        yield Settings.from_env()
        return
    with (
        tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp,
        EmbeddedStack(Path(tmp), ports=StackPorts.free(), memory=args.memory) as stack,
    ):
        yield stack.settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--memory", action="store_true", help="embedded tansu on memory storage instead of S3")
    parser.add_argument("--external", action="store_true", help="use the cluster from RLSIZER_* settings")
    parser.add_argument("--flush-rows", type=int, default=50_000, help="records per warehouse transaction")
    parser.add_argument("--profile", type=Path, help="also write a cProfile of the replay to this file")
    parser.add_argument(
        "--decoder",
        choices=("columnar", "fastavro"),
        default="columnar",
        help="the replay's batch decoder: the codec's (schemas.columnar) or fastavro's reader (FastavroBatches)",
    )
    args = parser.parse_args()
    with cluster(args) as base, tempfile.TemporaryDirectory(prefix="bench-wh-") as wh_dir:
        settings = dataclasses.replace(base, topic_prefix=f"bench_{uuid.uuid4().hex[:8]}")
        # no admin client kept: one alive while the embedded broker stops logs a failed reconnect every 50 ms
        ensure_topics(AdminClient(settings.kafka_config()), new_topics(settings, include_schemas=False))
        codec = EventCodec(InMemoryRegistry())
        produced_s = produce(settings, codec, args.events)
        print(f"produced {args.events:,} events in {produced_s:.2f} s ({args.events / produced_s:,.0f}/s)")

        raw_n, raw_s = raw_consume(settings)
        profiler = cProfile.Profile() if args.profile else contextlib.nullcontext()
        with profiler:
            decoder = (
                codec
                if args.decoder == "columnar"
                else FastavroBatches(
                    codec, (BarClosed, SignalRaised, FeaturesComputed, SizeDecided, OrderFilled, TradeClosed)
                )
            )
            stats = replay(
                settings, decoder, warehouse_path=Path(wh_dir) / "wh.duckdb", progress=False, flush_rows=args.flush_rows
            )
        if args.profile:
            profiler.dump_stats(args.profile)
        if raw_n != args.events or stats.events != args.events or stats.new_rows != args.events:
            raise SystemExit(
                f"count mismatch: produced {args.events}, raw read {raw_n}, replay read {stats.events}, stored {stats.new_rows}"
            )
        raw_rate, replay_rate = raw_n / raw_s, stats.events / stats.seconds
        print(f"raw confluent-kafka to EOF: {raw_n:,} events in {raw_s:.2f} s = {raw_rate:,.0f} events/s")
        print(
            f"replay into DuckDB ({args.decoder}): {stats.events:,} events in {stats.seconds:.2f} s = {replay_rate:,.0f} events/s"
        )
        print(
            f"  of which decode {stats.decode_seconds:.2f} s (consuming thread), DuckDB writes {stats.write_seconds:.2f} s (writer thread, overlapping)"
        )
        print(f"  then dedupe and checkpoint {stats.finish_seconds:.2f} s")
        print(f"ratio replay/raw: {replay_rate / raw_rate:.3f} (target >= 0.5)")


if __name__ == "__main__":
    main()
