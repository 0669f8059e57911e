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

Throughput: each flush (``flush_rows`` messages) is decoded in one
``EventCodec.decode_batch`` call (Avro straight into Arrow columns, see
``schemas.columnar``; rows it is unsure of go through ``decode``, so outcomes
and dead-letter reasons are unchanged), and written by one background thread
while the next flush is read and decoded; DuckDB releases the GIL while it
inserts. Flushes commit in order and a failed write stops every later one.
Threads: the replay's warehouse connection runs DuckDB on one thread. The writer
thread already overlaps the reading and decoding, and on two cores a second DuckDB
thread only took CPU from them (200k bench events, 4 paired runs: 1.25-1.45 s
against 1.35-1.87 s with two).
Decoding on a thread of its own, between the consuming and the writing ones, was
tried and was no faster: confluent-kafka builds each consumed message with the GIL
held, the decoding holds it for most of its time too, and the two only queued for it
(200k bench events with the writes left out, 3 runs each: 1.09-1.14 s against
0.90-1.06 s on the consuming thread).
Memory: a 200k-event bench replay takes 63-87k minor page faults (the raw read
12-25k); about a third of the consuming thread's perf samples were in the kernel's
fault path, much of it zeroing transparent huge pages for numpy's large arrays.
Keeping freed memory (glibc ``mallopt``: no trimming, a 1 GB mmap threshold),
pyarrow's system pool instead of mimalloc, or huge pages off (``PR_SET_THP_DISABLE``)
changed neither the fault counts nor the times (3 runs each): the pages are touched
for the first time, once per replay (the batch holding the feature maps needs the
most), so there is little freed memory to reuse. A loop decoding one batch again
and again does reuse it (~65 -> ~50 ms per 60k events with ``mallopt``).
A replay into a new file is a bulk load (see ``trainer.warehouse.store``): rows are
appended as they come, and once every partition is at EOF ``Warehouse.finish_load``
deletes the repeats (first stored copy wins); the stats count them as duplicates.
Replays into an existing file insert only rows whose ``event_id`` is not stored yet.
Start: the consumer is made first. Into a new file (none there, or ``rebuild``),
which stores no offsets, every partition is assigned from the beginning while a
helper thread makes the file, so fetching starts before the file is ready (making
it took 30-80 ms, ~15 ms of which the metadata request used to cover). Into an
existing file, the topic metadata is asked on the helper thread while the file
opens, and the partitions are assigned from its stored offsets. A file found missing
but made meanwhile by another process gets a new consumer, assigned from its offsets.
Consume batches: ``batch_size`` 2,000 messages, not 10,000. confluent-kafka builds a
batch's Message objects with the GIL held, and the writer's DuckDB client needs the GIL
between execution steps: the first 20k-row write took 155-284 ms for 25-59 ms of CPU
beside 10k batches, 55-73 ms for 26-34 ms beside 2k batches. Replay median in alternated
pairs: 0.92 against 1.01 s (10 pairs), 1.15 against 1.23 s (6 bench runs each, a slow
hour); 1,000 gave -10% and -3%, 300 was slower. A bare read to EOF is faster in small
batches too (6 alternated rounds, median: 500 0.39 s, 1,000 0.40, 2,000 0.40, 5,000 0.47,
10,000 0.51): each call waits for its batch to fill before anything is handed over. The
bench's raw read uses ``CONSUME_BATCH`` as well.
End: a partition at EOF is paused, so the consumer stops fetching it while the others
are read; it used to wait out ``fetch.wait.max.ms`` on it at the broker again and again.
Records that reach it meanwhile are read by the next replay, from the stored offset.
The embedded broker spent ~0.25 s of CPU instead of ~0.30 s on a 200k-event bench replay
(8 alternated pairs; the replay's own time did not change visibly).
Garbage collection: confluent-kafka's messages are objects the cyclic collector tracks,
and a flush holds up to ``flush_rows`` of them, so consuming 200k records set off ~250
young and two full collections, each full one walking every object of the process
(~120k after the imports): 160-200 ms per 200k-event replay with the collector on.
While the replay consumes, automatic collection is off (``young_collections_only``), and
the young generations are collected after each flush, once its messages are released,
so reference cycles (an exception kept for a dead letter) do not pile up; objects that
live long enough to be old are left for the collector once it is on again. 4 alternated
rounds of 200k events: replay median 0.72 s against 0.90 s with the collector on (0.80 s
with ``gc.freeze()`` instead). The bench's raw read runs with collection off as well.
Measured with ``bench/bench_replay.py``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import operator
import queue
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Final, Protocol, cast

import numpy as np
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import ClusterMetadata
from tqdm import tqdm

from config.settings import Settings
from schemas.codec import DecodedBatch, RegistryUnavailable
from schemas.events import Event, EventRejected
from streams.topics import CATALOG
from trainer.warehouse.store import (
    TABLE_FOR_EVENT,
    Rows,
    TableSpec,
    Warehouse,
    WriteResult,
    default_path,
    open_warehouse,
)

log = logging.getLogger(__name__)

_IS_NONE: Final = functools.partial(operator.is_, None)  # a C-level test (KafkaError == None raises)
REJECT_NAMESPACE: Final = uuid.UUID("6f1c2b64-9a55-4d8e-8a8e-3d1f5c1b7a10")
WRITE_CHUNK_ROWS: Final = 2048
CONSUME_BATCH: Final = 2_000  # messages per consume call (see "Consume batches")


class Decoder(Protocol):
    def decode(self, data: bytes | None) -> Event: ...

    def decode_batch(self, datas: Sequence[bytes | None]) -> DecodedBatch: ...


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
    decode_seconds: float = 0.0  # decoding and building Arrow batches (the consuming thread)
    write_seconds: float = 0.0  # DuckDB transactions (the writer thread, overlapping the decoding)
    finish_seconds: float = 0.0  # after the last write: a bulk load's dedupe, and the closing checkpoint

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
            f"{self.tombstones} tombstones; decode {self.decode_seconds:.2f} s, write {self.write_seconds:.2f} s, "
            f"finish {self.finish_seconds:.2f} s"
        )
        if self.rebuilt_from:
            lines.append(f"warehouse rebuilt: {self.rebuilt_from}")
        return "\n".join(lines)


def rejected_event(msg: Message, kind: str, reason: str) -> EventRejected:
    """The dead-letter record for an undecodable message, with an id stable across replays."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError("only a consumed record (which names its topic, partition and offset) can be dead-lettered")
    _ts_type, ts_ms = msg.timestamp()
    ts_event = datetime.fromtimestamp(ts_ms / 1000, UTC) if ts_ms and ts_ms > 0 else datetime.now(UTC)
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
    """Messages read but not yet written, and the offsets they advance."""

    messages: list[Message] = field(default_factory=list)

    def take(self, codec: Decoder) -> _Batch | None:
        """Decode every pending message in one batch: the rows per table and the offsets they advance."""
        if not self.messages:
            return None
        started = time.perf_counter()
        messages = self.messages.copy()
        self.messages.clear()  # in place: the consume loop holds its append
        # C-level calls: these run once per record. Consumed records (not errors) name all three.
        topics = cast("list[str]", list(map(Message.topic, messages)))
        partitions = cast("list[int]", list(map(Message.partition, messages)))
        offsets = cast("list[int]", list(map(Message.offset, messages)))
        values = list(map(Message.value, messages))
        topic_array = pa.array(topics, pa.string())
        partition_array, offset_array = np.asarray(partitions, np.int32), np.asarray(offsets, np.int64)
        read = _read_positions(topic_array, partition_array, offset_array)
        present: Sequence[int]
        if None in values:  # tombstones: decode the others
            present = [i for i, v in enumerate(values) if v is not None]
            batch = codec.decode_batch([values[i] for i in present])
        else:
            present = range(len(values))
            batch = codec.decode_batch(values)
        tables: dict[TableSpec, list[Rows]] = defaultdict(list)
        if batch.columns:
            where = np.arange(len(values)) if isinstance(present, range) else np.asarray(present, np.int64)
            for event_type, (index, columns) in batch.columns.items():
                rows = where[index]
                spec = TABLE_FOR_EVENT[event_type]
                tables[spec].append(
                    spec.from_columns(
                        columns,
                        topic_array.take(pa.array(rows)),
                        pa.array(partition_array[rows]),
                        pa.array(offset_array[rows]),
                    )
                )
        events: dict[TableSpec, list[Event]] = defaultdict(list)
        sources: dict[TableSpec, list[tuple[str, int, int]]] = defaultdict(list)
        rejected = 0
        for i, result in batch.singles:
            j = present[i]
            if isinstance(result, Exception):  # any undecodable record is dead-lettered, never fatal
                result = rejected_event(messages[j], getattr(result, "kind", type(result).__name__), str(result))
                rejected += 1
            spec = TABLE_FOR_EVENT[type(result)]
            events[spec].append(result)
            sources[spec].append((topics[j], partitions[j], offsets[j]))
        for spec, evs in events.items():
            tables[spec].append(spec.to_arrow(evs, sources[spec]))
        return _Batch(
            tables={spec: _chunked(Rows.concat(parts)) for spec, parts in tables.items()},
            offsets=read.next_offsets,
            events_by_topic=read.by_topic,
            rejected=rejected,
            tombstones=len(messages) - len(present),
            decode_seconds=time.perf_counter() - started,
        )


@dataclass(frozen=True, slots=True)
class _ReadPositions:
    next_offsets: dict[tuple[str, int], int]  # per partition read: after the last record read
    by_topic: Counter[str]  # records read per topic


def _read_positions(topics: pa.Array, partitions: np.ndarray, offsets: np.ndarray) -> _ReadPositions:
    """Where a batch of records leaves each partition, and how many each topic gave (numpy, not per record).

    Records of one partition arrive in offset order, so its last record read is its highest offset.
    """
    encoded = topics.dictionary_encode()
    names = encoded.dictionary.to_pylist()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    width = int(partitions.max()) + 1 if len(partitions) else 1
    keys = codes * width + partitions
    distinct, first_from_end = np.unique(keys[::-1], return_index=True)
    last = len(keys) - 1 - first_from_end
    next_offsets = {
        (names[k // width], k % width): o + 1 for k, o in zip(distinct.tolist(), offsets[last].tolist(), strict=True)
    }
    counts = np.bincount(codes, minlength=len(names)).tolist()
    return _ReadPositions(next_offsets, Counter(dict(zip(names, counts, strict=True))))


def _chunked(rows: Rows) -> Rows:
    """Record batches of ``WRITE_CHUNK_ROWS`` (zero-copy): DuckDB then converts them on several threads."""
    table = rows.table
    return Rows(
        pa.Table.from_batches(table.to_batches(max_chunksize=WRITE_CHUNK_ROWS), schema=table.schema), rows.layouts
    )


@dataclass(frozen=True, slots=True)
class _Batch:
    """Rows ready for one warehouse transaction, and what they count for."""

    tables: dict[TableSpec, Rows]
    offsets: dict[tuple[str, int], int]
    events_by_topic: Counter[str]
    rejected: int
    tombstones: int
    decode_seconds: float


class _Writer:
    """Writes batches in order on one background thread, while the caller decodes the next.

    DuckDB releases the GIL while it inserts, so on two cores decoding and writing
    overlap. At most one batch waits; an error in the thread is raised by the next
    ``submit`` or by ``drain``. Totals count only what was committed.
    """

    def __init__(self, warehouse: Warehouse) -> None:
        self._warehouse = warehouse
        self._queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self.totals = _Totals()
        self._thread = threading.Thread(target=self._run, name="replay-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            try:
                self._write(batch)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _write(self, batch: _Batch) -> None:
        if self._error is not None:
            return  # after a failure, nothing later may commit (offsets must stay contiguous)
        started = time.perf_counter()
        try:
            result = self._warehouse.write(batch.tables, batch.offsets)
        except BaseException as exc:  # handed to the caller's thread
            self._error = exc
            return
        self.totals.add(batch, result, time.perf_counter() - started)

    @property
    def idle(self) -> bool:
        """Nothing queued or being written."""
        return self._queue.unfinished_tasks == 0

    def submit(self, batch: _Batch | None) -> None:
        self._raise()
        if batch is not None:
            self._queue.put(batch)

    def drain(self) -> _Totals:
        """Wait for every submitted batch; raise the writer's error if there was one."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise()
        return self.totals

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


@dataclass(slots=True)
class _Totals:
    events_by_topic: Counter[str] = field(default_factory=Counter)
    new_rows: int = 0
    duplicates: int = 0
    rejected: int = 0
    tombstones: int = 0
    decode_seconds: float = 0.0
    write_seconds: float = 0.0

    def add(self, batch: _Batch, result: WriteResult, write_seconds: float) -> None:
        self.events_by_topic.update(batch.events_by_topic)
        self.new_rows += result.new_rows
        self.duplicates += result.duplicates
        self.rejected += batch.rejected
        self.tombstones += batch.tombstones
        self.decode_seconds += batch.decode_seconds
        self.write_seconds += write_seconds

    def remove_duplicates(self, removed: int) -> None:
        """Rows a bulk load counted new and ``Warehouse.finish_load`` deleted as repeats."""
        self.new_rows -= removed
        self.duplicates += removed


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
        # librdkafka drops the bootstrap connection once metadata names the broker, and a
        # request caught between the two waits out the "sparse connect" pause (half of this,
        # 50 ms by default) before the named broker is dialled: list_topics took ~54 ms
        # instead of ~14 ms on the embedded broker. The backoff still doubles up to
        # reconnect.backoff.max.ms (10 s) while a broker stays down.
        "reconnect.backoff.ms": 20,
    }


def assignment(
    consumer: Consumer,
    topics: list[str],
    stored: dict[tuple[str, int], int],
    timeout: float,
    metadata: Future[ClusterMetadata] | None = None,
) -> list[TopicPartition]:
    """Partitions to read, each from its stored offset (or the beginning).

    ``metadata``: ``consumer.list_topics`` already under way (see ``replay``), else it is asked here.
    """
    try:
        cluster = metadata.result() if metadata is not None else consumer.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise ReplayError(f"cannot read topic metadata from the broker: {exc.args[0].str()}") from exc
    parts: list[TopicPartition] = []
    for topic in topics:
        meta = cluster.topics.get(topic)
        if meta is None or meta.error is not None:
            log.warning("topic %s does not exist: nothing to replay from it", topic)
            continue
        for partition in sorted(meta.partitions):
            start = stored.get((topic, partition))
            parts.append(TopicPartition(topic, partition, OFFSET_BEGINNING if start is None else start))
    return parts


def _open_and_assign(
    make_consumer: Callable[[], Consumer], topics: list[str], path: Path, *, rebuild: bool, timeout: float
) -> tuple[Warehouse, list[TopicPartition], Consumer]:
    """Open the warehouse, make a consumer and assign it the partitions from the stored offsets (see "Start").

    A new file (none at ``path``, or ``rebuild``) stores no offsets, so every partition
    is assigned from the beginning at once and fetching runs while the file is made.
    Should the file turn out to store offsets after all (made meanwhile by another
    process), that consumer is closed unread and a new one is assigned from them, so
    nothing the first fetched can be read (assigning the first consumer again let one
    test run read 32 records where 16 were new). On an error the consumer and the file
    are closed.
    """
    fresh = rebuild or not path.exists()
    metadata: Future[ClusterMetadata] | None = None
    parts: list[TopicPartition] = []
    consumer = make_consumer()
    to_close: Consumer | None = consumer  # what an error must close
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="replay-open") as pool:
            if fresh:
                opening = pool.submit(open_warehouse, path, rebuild=rebuild, bulk_load=True)
                try:
                    parts = assignment(consumer, topics, {}, timeout=timeout)
                    if parts:
                        consumer.assign(parts)
                except BaseException:
                    with contextlib.suppress(Exception):
                        opening.result().close()  # never leave the file open behind an error
                    raise
                warehouse = opening.result()
            else:  # the consumer connects and reads the topic metadata while the file opens
                metadata = pool.submit(consumer.list_topics, timeout=timeout)
                warehouse = open_warehouse(path, rebuild=rebuild, bulk_load=True)
        try:
            stored = warehouse.offsets()
            if fresh and not stored:
                return warehouse, parts, consumer
            if fresh:  # made meanwhile
                to_close = None
                consumer.close()
                consumer = to_close = make_consumer()
            parts = assignment(consumer, topics, stored, timeout=timeout, metadata=metadata)
            if parts:
                consumer.assign(parts)
        except BaseException:
            warehouse.close()
            raise
    except BaseException:
        if to_close is not None:
            to_close.close()
        raise
    return warehouse, parts, consumer


def records_ahead(consumer: Consumer, parts: list[TopicPartition], timeout: float) -> int:
    """An estimate of the records between ``parts``' offsets and the watermarks: it only sizes the progress bar.

    One request per partition; called after ``assign``, so fetching has already started.
    """
    ahead = 0
    for tp in parts:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout)
        except KafkaException:
            continue  # an estimate; EOF decides when to stop
        ahead += max(0, high - (low if tp.offset == OFFSET_BEGINNING else max(tp.offset, low)))
    return ahead


def _sort_out(
    messages: list[Message],
    errors: list[KafkaError | None],
    keep: Callable[[Message], None],
    remaining: set[tuple[str, int]],
) -> tuple[int, list[TopicPartition]]:
    """Keep the records, mark partitions at EOF done, raise on fatal errors; the records kept and the partitions ended."""
    read = 0
    ended: list[TopicPartition] = []
    for msg, err in zip(messages, errors, strict=True):
        if err is None:
            keep(msg)
            read += 1
        elif err.code() == KafkaError._PARTITION_EOF:
            if (at := (msg.topic(), msg.partition())) in remaining:
                remaining.discard(at)
                ended.append(TopicPartition(*at))
        elif err.fatal() or not err.retriable():
            raise ReplayError(f"consuming {msg.topic()}[{msg.partition()}]: {err.str()}")
        else:
            log.warning("retriable consumer error: %s", err.str())
    return read, ended


@contextlib.contextmanager
def young_collections_only() -> Iterator[Callable[[], object]]:
    """Automatic garbage collection off inside; the callable it gives collects the young generations.

    See "Garbage collection". Collection comes back on afterwards (errors included)
    only if it was on before; when it was off, the callable does nothing.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield functools.partial(gc.collect, 1) if was_enabled else _do_nothing
    finally:
        if was_enabled:
            gc.enable()


def _do_nothing() -> None:
    return None


def replay(
    settings: Settings,
    codec: Decoder,
    *,
    warehouse_path: Path | None = None,
    progress: bool = True,
    rebuild: bool = False,
    batch_size: int = CONSUME_BATCH,
    flush_rows: int = 50_000,
    idle_timeout: float = 30.0,
) -> ReplayStats:
    """Read every catalogue topic from the stored offsets to EOF into the warehouse.

    Raises ``ReplayError`` if no record or EOF arrives for ``idle_timeout`` seconds
    while partitions are still unfinished (what was read so far is committed).
    """
    started = time.perf_counter()
    topics = [settings.topic(spec.short_name) for spec in CATALOG]
    path = Path(warehouse_path) if warehouse_path is not None else default_path(settings.data_dir)
    warehouse, parts, consumer = _open_and_assign(
        lambda: Consumer(consumer_config(settings)), topics, path, rebuild=rebuild, timeout=idle_timeout
    )
    with warehouse:
        writer: _Writer | None = None
        try:
            warehouse.con.execute("SET threads = 1")  # see "Threads" above (this connection is the replay's own)
            remaining = {(tp.topic, tp.partition) for tp in parts}
            ahead = records_ahead(consumer, parts, timeout=idle_timeout) if progress else 0
            writer = _Writer(warehouse)
            pending = _Pending()
            keep = pending.messages.append
            last_progress = time.monotonic()
            with (
                tqdm(
                    total=ahead, unit="ev", unit_scale=True, desc="replay", disable=not progress, smoothing=0.1
                ) as bar,
                young_collections_only() as collect_young,
            ):
                while remaining:
                    messages = consumer.consume(batch_size, timeout=0.05)
                    if messages:
                        last_progress = time.monotonic()
                    elif time.monotonic() - last_progress > idle_timeout:
                        writer.submit(pending.take(codec))
                        committed = writer.drain().new_rows
                        raise ReplayError(
                            f"no record or end-of-partition for {idle_timeout:.0f} s; unfinished: "
                            + ", ".join(f"{t}[{p}]" for t, p in sorted(remaining))
                            + f" (committed {committed} new rows so far)"
                        )
                    errors = list(map(Message.error, messages))
                    if all(map(_IS_NONE, errors)):  # the usual case: records only, kept in one step
                        pending.messages.extend(messages)
                        read = len(messages)
                    else:
                        read, ended = _sort_out(messages, errors, keep, remaining)
                        if ended:  # done with them: no more fetches for them (see "End")
                            consumer.pause(ended)
                    bar.update(read)
                    waiting = len(pending.messages)
                    if waiting >= flush_rows or (writer.idle and waiting >= flush_rows // 5):
                        writer.submit(pending.take(codec))  # an idle writer gets work early
                        collect_young()  # the flush's messages are released (see "Garbage collection")
                writer.submit(pending.take(codec))
                totals = writer.drain()
            finishing = time.perf_counter()
            totals.remove_duplicates(warehouse.finish_load())
        except RegistryUnavailable as exc:  # not bad records: none is written as rejected, no offset passes them
            raise ReplayError(
                f"{exc}; the records from there on were not written, and the next replay reads "
                f"them again: run it once the registry answers"
            ) from exc
        finally:
            if writer is not None:
                with contextlib.suppress(BaseException):
                    writer.drain()  # never close the warehouse under a running write
            consumer.close()
        rebuilt_from = warehouse.rebuilt_from
    finish_seconds = time.perf_counter() - finishing  # closing checkpoints the log into the file
    return ReplayStats(
        events_by_topic=MappingProxyType(dict(totals.events_by_topic)),
        new_rows=totals.new_rows,
        duplicates=totals.duplicates,
        rejected=totals.rejected,
        tombstones=totals.tombstones,
        seconds=time.perf_counter() - started,
        rebuilt_from=rebuilt_from,
        decode_seconds=totals.decode_seconds,
        write_seconds=totals.write_seconds,
        finish_seconds=finish_seconds,
    )
