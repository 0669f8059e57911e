"""The Faust worker: ``create_app(settings)`` builds it; nothing is built at import time.

One agent reads the one input topic (``rlsizer.inputs``: every bar, signal and fill of
a symbol on one partition, in the order the bot sent them) and hands each record to
``agents.inputs.InputPath`` -- decode, already applied?, apply to the symbol's book --
then sends what comes back: features and the decision on the signal's partition,
``TradeClosed`` on the fill's, dead letters by key. A partition's records are handled
one at a time in offset order, so a decision is a function of the log
(docs/DETERMINISM.md).

Two changelogged tables, both keyed on the input's partition so a symbol's state moves
with it: ``books`` (symbol -> ``agents.book.SymbolBook``, written behind once per
commit, after the outputs it accounts for: ``agents.glue.book_store``) and ``decided``
(signal_id -> the decision sent, the signal, its position and closed trade:
``agents.glue.decided_record``).

Beside the agent: the model watcher (a thread: verified hot swap of the policy; each
decision records the policy and model version that made it) and, on ``/health`` and
``/metrics``, the worker's state and counters. Faust's own internals that the worker
overrides (drain loop, consumer, producer, table writes) are in ``agents.glue``:
``transport``, ``drain``, ``contiguous``, ``rdkafka_producer``, ``changelog``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import faust
from confluent_kafka.admin import AdminClient
from faust.types import TP
from mode import Service

from agents.glue import decided_record
from agents.glue.book_store import BookStore
from agents.glue.contiguous import APPLY, SKIP, due_offset, next_step
from agents.glue.faust.changelog import ChangelogWriter
from agents.glue.faust.transport import faust_settings, install_transport, worker_datadir
from agents.glue.metrics import WorkerMetrics, consumer_lag
from agents.glue.models import LoadModel, ModelWatcher, default_load_model
from agents.glue.registry_wait import registry_wait
from agents.glue.watchdog import PartitionState, ProgressWatch
from agents.health import worker_report_key
from agents.inputs import InputPath, Outgoing, Source
from agents.sizing import PolicySlot
from agents.strategy_map import StrategyMap
from config.settings import Settings
from schemas.codec import EventCodec, RegistryUnavailable
from schemas.events import HealthChecked, utc_now
from streams.codec_factory import make_codec
from streams.consumer import make_consumer
from streams.producer import EventProducer, make_producer
from streams.topics import inputs_topic, worker_group_id

log = logging.getLogger(__name__)


def app_id(settings: Settings) -> str:
    return worker_group_id(settings)


@dataclass
class Worker:
    """The running worker's state, as the agent loop uses it."""

    app: Any
    path: InputPath
    store: BookStore
    decided_table: Any
    changelog: ChangelogWriter
    metrics: WorkerMetrics
    codec: EventCodec
    inputs: str = ""  # the input topic's name
    rebalance_seen: int = -1  # ``app.rebalancing_count`` the caches were last checked against
    rewinding: set[int] = field(default_factory=set)  # input partitions sent back to the record due
    starts: dict[int, int] = field(default_factory=dict)  # input partition -> its first offset
    stalled_at: dict[int, int] = field(default_factory=dict)  # input partition -> record due, position past it
    worker_id: str = ""
    watch: ProgressWatch = field(default_factory=ProgressWatch)
    reported: tuple[bool, float] = (False, 0.0)  # the last progress report: stalled?, when (monotonic)

    def send(self, out: list[Outgoing]) -> None:
        produce_now = self.app.producer.produce_now
        for record in out:
            produce_now(record.topic, record.key, record.value, record.partition)

    async def next_step(self, partition: int, offset: int) -> str:
        """``agents.glue.contiguous.next_step`` for the record at ``offset``; rewinds the consumer on a jump."""
        applied = self.store.progress(partition)
        start = await self.start_of(partition) if applied is None else 0
        step = next_step(offset, applied=applied, start=start, rewinding=partition in self.rewinding)
        if step is APPLY:
            self.rewinding.discard(partition)
        elif step is SKIP:
            self.metrics.reread()
        else:
            await self.rewind(partition, due_offset(applied, start), f"record {offset} came")
        return step

    async def rewind(self, partition: int, due: int, why: str) -> None:
        """Send the consumer back to the record ``due`` of input ``partition`` (Faust dropped the ones before)."""
        log.warning(
            "%s[%d]: %s while %d was due (dropped by Faust's consumer): reading again from %d",
            self.inputs,
            partition,
            why,
            due,
            due,
        )
        self.rewinding.add(partition)
        self.metrics.rewinds.inc()
        try:  # in the consumer's thread, with Faust's read offset moved too (a plain seek from here could be lost)
            await self.app.consumer.seek_wait({TP(self.inputs, partition): due})
        except Exception as exc:  # no longer assigned (a rebalance), or the broker away: the timer tries again
            log.warning("%s[%d]: could not read again from %d: %r", self.inputs, partition, due, exc)

    async def start_of(self, partition: int) -> int:
        """The first offset of input ``partition`` (asked of the broker once)."""
        if partition not in self.starts:
            loop = asyncio.get_running_loop()
            self.starts[partition] = await loop.run_in_executor(
                None, partial(_log_start, self.path.settings, self.inputs, partition)
            )
        return self.starts[partition]

    async def check_tail(self) -> None:
        """Rewind a partition whose consumer position passed the record due without it coming.

        Dropped records at a partition's end are revealed by no later record: two checks
        in a row see the position past the record due, with nothing applied between.
        """
        app = self.app
        if app.rebalancing or self.rebalance_seen != app.rebalancing_count:
            self.stalled_at.clear()
            return
        for tp in [tp for tp in app.consumer.assignment() if tp.topic == self.inputs]:
            applied = self.store.progress(tp.partition)
            due = due_offset(applied, await self.start_of(tp.partition) if applied is None else 0)
            position = await app.consumer.position(tp)
            if position is None or position <= due:  # a rewind that did not take is tried again, too
                self.stalled_at.pop(tp.partition, None)
            elif self.stalled_at.get(tp.partition) != due:
                self.stalled_at[tp.partition] = due
            else:
                await self.rewind(tp.partition, due, f"position {position} passed it and nothing came")
                self.stalled_at.pop(tp.partition, None)

    def check_progress(self, now: float) -> None:
        """Sample ``ProgressWatch``; report a stall (or its end) at once, and the state every minute, as
        ``HealthChecked`` events on the health topic (``rlsizer health`` reads them)."""
        app = self.app
        if app.rebalancing:
            return
        held = {
            tp.partition: PartitionState(self.store.progress(tp.partition), app.consumer.highwater(tp))
            for tp in app.consumer.assignment()
            if tp.topic == self.inputs
        }
        stalled = bool(self.watch.sample(now, held))
        was, when = self.reported
        if stalled != was or now - when >= 60.0:
            self.reported = (stalled, now)
            detail = f"worker {self.worker_id}: {self.watch.describe(self.inputs)}"
            if stalled:
                log.error("%s", detail)
            event = HealthChecked(
                ts_event=utc_now(),
                component="worker",
                check="progress",
                status="FAIL" if stalled else "OK",
                detail=detail,
                action="rlsizer up restarts a worker it supervises" if stalled else None,
            )
            topic = self.path.settings.topic("health")  # keyed as the worker's own reports (rlsizer health reads them)
            self.app.producer.produce_now(
                topic, worker_report_key(self.worker_id), self.codec.encode(topic, event), None
            )

    def after_rebalance(self) -> None:
        """At the first record after a rebalance: drop caches of what another worker may have changed, and
        rebuild the retention index from the ``decided`` table as recovered (Faust resumes the streams only
        once the tables are recovered)."""
        self.rebalance_seen = self.app.rebalancing_count
        assigned = {tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.inputs}
        self.store.forget_clean(assigned)
        self.rewinding.clear()
        self.stalled_at.clear()
        started = time.monotonic()
        skipped: list[bytes] = []
        entries = decided_record.retention_entries(
            self.decided_table.data.data.items(),
            partial(self.changelog.partition, self.decided_table),
            self.codec,
            skipped=skipped,
        )
        self.path.rebuild_retention(entries, self.store)
        if skipped:
            log.warning(
                "decided: %d entries kept without retention (partition unknown or value unreadable), e.g. %r",
                len(skipped),
                skipped[0],
            )
        log.info(
            "decided: retention rebuilt in %.2f s (%d entries kept)",
            time.monotonic() - started,
            len(self.path.retention),
        )


async def run_inputs(worker: Worker, stream: Any) -> None:
    """The agent: every input record, once, in offset order per partition, through ``InputPath.handle``."""
    handle, send, app, store = worker.path.handle, worker.send, worker.app, worker.store
    async for record in stream.events():
        if worker.rebalance_seen != app.rebalancing_count:
            worker.after_rebalance()
        m = record.message
        step = await worker.next_step(m.partition, m.offset)
        if step is not APPLY:
            continue
        src = Source(m.topic, m.partition, m.offset, m.key, m.value)
        try:
            out = handle(src, store)
        except RegistryUnavailable as exc:
            out = await _once_registry_answers(worker, src, exc)
        store.put_progress(m.partition, m.offset)
        send(out)


async def _once_registry_answers(worker: Worker, src: Source, exc: Exception) -> list[Outgoing]:
    """``handle`` again and again while the schema registry cannot say what a schema id is.

    Its records are not bad input: dead-lettering them would drop every signal of an
    outage. The agent waits (``agents.glue.registry_wait``) and the record keeps its place.
    """
    attempts = 0
    while True:
        worker.metrics.registry_waits.inc()
        attempts += 1
        wait = registry_wait(attempts)
        log.warning("%s; the record at %s[%d]@%d waits %.0f s for it", exc, src.topic, src.partition, src.offset, wait)
        await asyncio.sleep(wait)
        try:
            return worker.path.handle(src, worker.store)
        except RegistryUnavailable as again:
            exc = again


def create_app(
    settings: Settings,
    *,
    slot: PolicySlot | None = None,
    worker_id: str | None = None,
    codec: EventCodec | None = None,
    load_model: LoadModel = default_load_model,
) -> faust.App:
    """Build the worker app (nothing connects until it starts)."""
    worker_id = worker_id or uuid.uuid4().hex[:8]
    codec = codec or make_codec(settings)
    slot = slot if slot is not None else PolicySlot()
    metrics = WorkerMetrics()
    load_model = _counting(load_model, metrics)
    metrics.serving(getattr(slot.current, "version", None))
    inputs = inputs_topic(settings)

    worker_datadir(settings, worker_id).mkdir(parents=True, exist_ok=True)
    app = faust.App(app_id(settings), **faust_settings(settings, worker_id=worker_id))
    install_transport(app, settings, contiguous_topics=(inputs,))

    def table(name: str, help_: str) -> Any:
        return app.Table(name, key_type=bytes, value_type=bytes, partitions=settings.topic_partitions, help=help_)

    books = table("books", "symbol -> agents.book.SymbolBook bytes")
    decided = table("decided", "signal_id -> decision, signal, position, closed trade (agents.glue.decided_record)")
    progress = table("progress", "input partition -> last offset applied (agents.glue.contiguous)")
    changelog = ChangelogWriter(app)
    store = BookStore(
        changelog, books, decided, progress, owns=lambda partition: TP(inputs, partition) in app.consumer.assignment()
    )
    app.producer.before_flush(store.take)  # type: ignore[attr-defined]  # RdKafkaProducer's (install_transport); Faust flushes it before every commit
    path = InputPath(
        settings,
        codec,
        StrategyMap.from_spec(settings.strategy_map),
        slot,
        partitions=_partition_count(settings, inputs),
        clock=utc_now,
        timer_ns=time.perf_counter_ns,
        metrics=metrics,
    )
    worker = Worker(
        app,
        path,
        store,
        decided,
        changelog,
        metrics,
        codec,
        inputs=inputs,
        worker_id=worker_id,
        watch=ProgressWatch(settings.worker_stall_seconds),
    )

    topic = app.topic(inputs, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    async def inputs_agent(stream: Any) -> None:
        await run_inputs(worker, stream)

    app.agent(topic, name="inputs")(inputs_agent)

    @app.timer(1.0)
    async def tail_check() -> None:
        await worker.check_tail()

    @app.timer(5.0)
    async def progress_check() -> None:
        worker.check_progress(time.monotonic())

    if settings.worker_web_port > 0:

        @app.page("/health")
        async def health_view(self: Any, request: Any) -> Any:
            state = metrics.health(slot, True)
            state["progress"] = worker.watch.describe(inputs)
            if worker.watch.stalls:
                state["status"] = "stalled"
                state["stalled_partitions"] = [s.partition for s in worker.watch.stalls]
            return self.json(state)

        @app.page("/metrics")
        async def metrics_view(self: Any, request: Any) -> Any:
            body, content_type = metrics.exposition()
            return self.bytes(body, content_type=content_type)

    metrics.decided_kept.set_function(lambda: len(decided.data.data))  # read when scraped
    metrics.lag = lambda: consumer_lag(
        app.consumer.assignment(),
        app.consumer.highwater,
        app.consumer._read_offset,  # type: ignore[attr-defined]  # Faust's Consumer keeps read offsets there (not in ConsumerT)
        frozenset({inputs}),
    )
    app.rlsizer_metrics = metrics  # type: ignore[attr-defined]  # for tests and embedding
    app.rlsizer_worker = worker  # type: ignore[attr-defined]
    _attach_model_watcher(app, settings, codec, slot, load_model)
    return app


def _partition_count(settings: Settings, topic: str) -> Any:
    """The partitions of ``topic``, asked of the broker once, when first needed (not at import or build time)."""
    known: list[int] = []

    def count() -> int:
        if not known:
            meta = AdminClient(settings.kafka_config()).list_topics(topic, timeout=30).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                raise RuntimeError(f"topic {topic} does not exist (create the topics: rlsizer topics create)")
            known.append(len(meta.partitions))
        return known[0]

    return count


def _log_start(settings: Settings, topic: str, partition: int) -> int:
    """The earliest offset of ``topic``'s ``partition`` (ListOffsets earliest; right on tansu)."""
    from confluent_kafka import Consumer, TopicPartition  # lazy: loads confluent-kafka only when used

    consumer = Consumer({**settings.kafka_config(), "group.id": "rlsizer-log-start", "enable.auto.commit": False})
    try:
        low, _high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30, cached=False)
        return int(low)
    finally:
        consumer.close()


def _counting(load_model: LoadModel, metrics: WorkerMetrics) -> LoadModel:
    """``load_model`` that records swaps (and refusals) in the metrics."""

    def load(event: Any) -> Any:
        try:
            policy = load_model(event)
        except Exception:
            metrics.model_swaps.labels("refused").inc()
            raise
        metrics.model_swaps.labels("loaded").inc()
        metrics.serving(getattr(policy, "version", None))
        return policy

    return load


def _attach_model_watcher(
    app: Any, settings: Settings, codec: EventCodec, slot: PolicySlot, load_model: LoadModel
) -> None:
    """Run the model watcher (a thread) with the app."""

    @app.service
    class ModelThread(Service):
        watcher: ModelWatcher | None = None

        async def on_start(self) -> None:
            dlq = EventProducer(make_producer(settings), codec, settings)
            self.watcher = ModelWatcher(
                settings,
                codec,
                consumer=make_consumer(settings, f"{app_id(settings)}-models"),
                dlq=dlq,
                slot=slot,
                load_model=load_model,
            )
            self.watcher.start()

        async def on_stop(self) -> None:
            if self.watcher is not None:
                self.watcher.stop()
