"""The Faust worker: ``create_app(settings)`` builds it; nothing is built at import time.

Agents (one per input topic, each a short decode -> handler -> send loop; the
rules live in ``agents.glue.handlers`` and the pure ``agents.pipeline``):

- ``bars``: per-symbol feature state (table ``symbol-state``, key symbol);
- ``signals``: features + one decision per ``signal_id`` (table ``decided``:
  signal_id -> the SizeDecided sent and the signal, ``agents.glue.decided_record``;
  a duplicate gets the stored decision again; entries expire once their signal is
  older than ``decided_retention_days`` before its symbol's latest decided signal,
  and a signal that old with no entry is dead-lettered as stale, never decided:
  ``agents.retention``);
  the account a decision changes is written back once per commit, not at every
  signal (``agents.glue.write_behind``: flushed by the producer before Faust
  commits the offsets of the signals that changed it);
- ``outcomes``: strategy history (key ``strategy@symbol``) and account (key symbol);
- ``fills``: entry/exit fills to ``TradeClosed`` (table ``trades``: signal_id -> the
  signal and its trade state, from the ``decided`` value at the first fill;
  ``open-trades``: symbol -> open signal ids, so every
  bar updates MAE/MFE of that symbol's open trades; see ``agents.glue.fills``; a
  closed trade's entry is deleted with its ``decided`` entry).

Topics carry raw bytes: our codec decodes, so bad bytes become dead letters
instead of stopping Faust. Tables are changelogged and written to the partition
of the record being processed, so per-symbol state moves with the symbol's
partition. Features and decisions are sent to the signal's partition number.
Besides the agents the app runs a ``ModelWatcher`` (hot swap, a thread) and a
reconciler (every signal gets a decision; see ``agents.glue.reconcile`` for why
Faust alone does not guarantee it) in a child process that is started again if it
dies (``agents.glue.reconcile_process``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from functools import partial
from typing import Any, Final

import faust
from mode import Service

from agents.glue import decided_record
from agents.glue.bar_clock import BarClock
from agents.glue.changelog import ChangelogWriter
from agents.glue.fills import FillHandlers, TradeEffects, open_ids, signal_record, trade_closed
from agents.glue.handlers import Effects, Handlers, Source, history_key
from agents.glue.metrics import WorkerMetrics, consumer_lag
from agents.glue.models import LoadModel, ModelWatcher, default_load_model
from agents.glue.ports import Pipeline, default_pipeline
from agents.glue.reconcile_process import ReconcilerProcess
from agents.glue.registry_wait import registry_wait
from agents.glue.transport import faust_settings, install_transport, worker_datadir
from agents.glue.write_behind import WriteBehind
from agents.retention import DecidedRetention, Expired, horizon_from_days
from agents.timestamps import from_micros, to_micros
from schemas.codec import EventCodec, RegistryUnavailable
from schemas.events import BarClosed, OrderFilled, SignalRaised, TradeClosed
from schemas.registry_client import HttpSchemaRegistry
from streams.consumer import make_consumer
from streams.producer import EventProducer, make_producer
from streams.settings import Settings
from streams.topics import worker_group_id

log = logging.getLogger(__name__)


REGISTRY_AWAY: Final = object()  # ``decoded``: the registry could not be asked about the record's schema id


def app_id(settings: Settings) -> str:
    return worker_group_id(settings)


def create_app(
    settings: Settings,
    *,
    slot: Any = None,
    worker_id: str | None = None,
    pipeline: Pipeline | None = None,
    codec: EventCodec | None = None,
    load_model: LoadModel = default_load_model,
    reconcile_after_s: float | None = None,
) -> faust.App:
    """Build the worker app; ``reconcile_after_s=0`` disables the reconciler (benchmarks of Faust alone)."""
    worker_id = worker_id or uuid.uuid4().hex[:8]
    pipeline = pipeline or default_pipeline()
    codec = codec or EventCodec(HttpSchemaRegistry(settings.registry_url, basic_auth=settings.registry_basic_auth or None))
    slot = slot if slot is not None else pipeline.new_slot()
    strategy_map = pipeline.strategy_map_from_spec(settings.strategy_map)
    metrics = WorkerMetrics()
    bar_clock = BarClock()  # in memory: after a restart the first bar of each symbol re-arms it
    retention = DecidedRetention(horizon_from_days(settings.decided_retention_days))  # rebuilt after each recovery
    handlers = Handlers(settings, codec, pipeline, strategy_map, slot, metrics=metrics)
    fill_handlers = FillHandlers(handlers)
    load_model = _counting(load_model, metrics)
    metrics.serving(getattr(slot.current, "version", None))
    if reconcile_after_s is None:
        reconcile_after_s = max(2.0, 4 * settings.decision_timeout_ms / 1000)

    worker_datadir(settings, worker_id).mkdir(parents=True, exist_ok=True)
    app = faust.App(app_id(settings), **faust_settings(settings, worker_id=worker_id))
    install_transport(app, settings)

    def raw_topic(short: str) -> Any:
        return app.topic(settings.topic(short), key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    def table(name: str, help_: str) -> Any:
        return app.Table(name, key_type=bytes, value_type=bytes,
                         partitions=settings.topic_partitions, help=help_)

    symbol_state = table("symbol-state", "symbol -> SymbolState bytes")
    decided = table("decided", "signal_id -> decision sent and signal received (agents.glue.decided_record)")
    history = table("strategy-history", "strategy@symbol -> StrategyHistory bytes")
    account = table("account", "symbol -> AccountState bytes")
    trades = table("trades", "signal_id -> signal and trade state (agents.glue.fills)")
    open_trades = table("open-trades", "symbol -> JSON list of open signal ids")
    dlq_topic = settings.topic("dlq")

    changelog = ChangelogWriter(app)

    def write_account(sym: bytes, state: Any, partition: int) -> None:
        # the changelog record goes to the partition of the record that changed it last
        changelog.set(account, sym, handlers.account_bytes(state), partition)

    read = changelog.get  # a table's value or None, straight from its memory store (see ChangelogWriter)
    accounts: WriteBehind[bytes, Any] = WriteBehind(lambda sym: handlers.account_of(read(account, sym)), write_account)
    app.producer.before_flush(accounts.flush)  # Faust flushes the producer before every commit

    def apply(effects: Effects, src: Source) -> None:
        """Hand ``effects``' records to the producer (``produce_now``: sent before the next commit)."""
        produce_now = app.producer.produce_now
        for out in effects.outgoing:
            same_partition = out.topic != dlq_topic  # features/decisions follow their signal
            produce_now(out.topic, out.key, out.value, src.partition if same_partition else None)

    def apply_trades(effects: TradeEffects, symbol: bytes, src: Source) -> None:
        for key, value in effects.trades:  # through the producer like `decided`: its tombstones stay in order
            changelog.set(trades, key, value, src.partition)
        if effects.open_index is not None:
            open_trades[symbol] = effects.open_index
        apply(effects.as_effects(), src)

    def bar_is_due(sym: bytes, ts_us: int) -> bool:
        """A bar closing at or before the signal (at ``ts_us``) is due and not seen yet (``agents.glue.bar_clock``)."""
        return settings.signal_bar_wait_ms > 0 and bar_clock.bar_due(sym, ts_us)

    async def bar_caught_up(sym: bytes, ts_us: int) -> None:
        """Wait (at most ``signal_bar_wait_ms``) for a due bar (``bar_is_due``): a signal's features and an
        exit's MAE/MFE count the bars closing up to their time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.signal_bar_wait_ms / 1000
        while bar_clock.bar_due(sym, ts_us):
            if loop.time() >= deadline:
                bar_clock.timed_out(sym)
                log.warning("%s: waited %d ms for a due bar that did not come; going on without it",
                            sym.decode(errors="replace"), settings.signal_bar_wait_ms)
                return
            await asyncio.sleep(0.002)

    def apply_outcome(trade: TradeClosed, src: Source) -> Effects:
        """Fold a trade into strategy history and account (idempotent by signal_id); written at once."""
        sym = trade.symbol.encode()
        hkey = history_key(trade.symbol, trade.strategy_id).encode()
        effects = handlers.on_outcome(src, trade, history=read(history, hkey), account=accounts.get(sym))
        if effects.history is not None:
            history[hkey] = effects.history
        if effects.account is not None:
            accounts.put(sym, effects.account, src.partition)
            accounts.flush()
        return effects

    def trade_record(sid: bytes) -> bytes | None:
        """The signal's ``trades`` entry; before its first fill, a fresh one from the signal kept with its decision."""
        record = read(trades, sid)
        if record is None:
            stored = read(decided, sid)
            received = decided_record.unpack(stored)[1] if stored is not None else None
            record = signal_record(received) if received is not None else None
        return record

    def source(event: Any) -> Source:
        m = event.message
        return Source(m.topic, m.partition, m.offset, m.key, m.value)

    def decoded(record: Any, expected: type) -> tuple[Source, Any] | None | object:
        """A stream record as ``(source, event)``; an undecodable one is dead-lettered (``None``);
        ``REGISTRY_AWAY`` when the registry cannot say what its schema id is (then
        ``decoded_once_registry_answers``).

        Called in each agent's own ``async for`` loop: an async generator around
        ``stream.events()`` cost a second generator frame per record.
        """
        src = source(record)
        try:
            event = handlers.decode(src, expected)
        except RegistryUnavailable as exc:
            registry_error[0] = exc
            return REGISTRY_AWAY
        if isinstance(event, Effects):
            apply(event, src)
            return None
        return src, event

    async def decoded_once_registry_answers(record: Any, expected: type) -> tuple[Source, Any] | None:
        """``decoded``, waiting while the schema registry cannot say what a schema id is.

        Its records are not bad input: dead-lettering them would drop every signal of an
        outage. The agent waits (``agents.glue.registry_wait``) and the record keeps its place.
        """
        attempts = 0
        while (got := decoded(record, expected)) is REGISTRY_AWAY:
            metrics.registry_waits.inc()
            attempts += 1
            wait, m = registry_wait(attempts), record.message
            log.warning("%s; the %s at %s[%d]@%d waits %.0f s for it", registry_error[0], expected.__name__,
                        m.topic, m.partition, m.offset, wait)
            await asyncio.sleep(wait)
        return got  # type: ignore[return-value]

    registry_error: list[Exception | None] = [None]  # the last RegistryUnavailable, for the log line

    @app.agent(raw_topic("bars"), name="bars")
    async def bars_agent(stream: Any) -> None:
        async for record in stream.events():
            if (got := decoded(record, BarClosed)) is REGISTRY_AWAY:
                got = await decoded_once_registry_answers(record, BarClosed)
            if got is None:
                continue
            src, bar = got
            key = bar.symbol.encode()
            effects = handlers.on_bar(src, bar, read(symbol_state, key))
            if effects.symbol_state is not None:
                symbol_state[key] = effects.symbol_state
                bar_clock.saw_bar(key, to_micros(bar.ts_event), bar.interval)
                ids = open_ids(open_trades.get(key))
                if ids:
                    marks = fill_handlers.on_bar(bar, {i: read(trades, i.encode()) for i in ids})
                    apply_trades(marks, key, src)
            apply(effects, src)

    @app.agent(raw_topic("signals"), name="signals")
    async def signals_agent(stream: Any) -> None:
        async for record in stream.events():
            if (got := decoded(record, SignalRaised)) is REGISTRY_AWAY:
                got = await decoded_once_registry_answers(record, SignalRaised)
            if got is None:
                continue
            src, signal = got
            sid = signal.signal_id.encode()
            stored = read(decided, sid)
            ts_us = to_micros(signal.ts_event)
            if indexed_after[0] != app.rebalancing_count:  # the first signal since a rebalance
                rebuild_retention()
            if stored is None:
                if retention.stale(signal.symbol, ts_us):
                    apply(stale(src, signal), src)
                    continue
                if bar_is_due(sym := signal.symbol.encode(), ts_us):
                    await bar_caught_up(sym, ts_us)  # only this agent writes `decided`: still None after
            on_signal(src, signal, sid, stored, ts_us)

    def stale(src: Source, signal: SignalRaised) -> Effects:
        latest = from_micros(retention.watermark(signal.symbol) or 0).isoformat()
        return handlers.reject(
            src, "stale_signal",
            f"signal {signal.signal_id} at {signal.ts_event.isoformat()} is more than "
            f"{settings.decided_retention_days:g} days older than the latest decided signal of {signal.symbol} "
            f"({latest}). The worker remembers decisions that long (RLSIZER_DECIDED_RETENTION_DAYS), so it cannot "
            f"tell whether this signal was decided before, and it does not decide it: a repeat must never get a "
            f"second, different decision",
        )

    def on_signal(src: Source, signal: SignalRaised, sid: bytes, stored: bytes | None, ts_us: int) -> None:
        sym = signal.symbol.encode()
        hkey = history_key(signal.symbol, signal.strategy_id).encode()
        effects = handlers.on_signal(
            src, signal,
            decided=stored,
            symbol_state=read(symbol_state, sym),
            history=read(history, hkey),
            account=accounts.get(sym),
        )
        if effects.decision is not None:  # record before sending: a replay re-sends, never re-decides
            changelog.set(decided, sid, decided_record.pack(effects.decision, src.value), src.partition)
            forget(retention.note(signal.symbol, ts_us, sid, src.partition))
        if effects.account is not None:
            accounts.put(sym, effects.account, src.partition)
        apply(effects, src)

    def forget(expired: list[Expired]) -> None:
        """Delete expired ``decided`` entries, and the ``trades`` entries of their closed trades.

        An open trade's entry stays until the trade closes (``fills_agent`` deletes it then).
        """
        for key, partition in expired:
            changelog.delete(decided, key, partition)
            trade = read(trades, key)
            if trade is not None and trade_closed(trade):
                recorded = changelog.partition(trades, key)
                changelog.delete(trades, key, partition if recorded is None else recorded)
        if expired:
            metrics.decided_expired.inc(len(expired))

    indexed_after = [-1]  # the rebalance (``app.rebalancing_count``) the retention index was built after

    def rebuild_retention() -> None:
        """The retention index from the table as recovered after a rebalance.

        Called at the first signal after each rebalance (``app.rebalancing_count`` moved):
        Faust resumes the streams only once the tables are recovered, so the table is
        complete then. A table ``on_recover`` callback doing this instead left the worker
        deciding nothing after a SIGKILL takeover in 5 of ~17 runs of the contract tests
        (0 of 6 without it; the cause inside Faust's recovery was not found).
        """
        indexed_after[0] = app.rebalancing_count
        started = time.monotonic()
        skipped: list[bytes] = []
        entries = decided_record.retention_entries(decided.data.data.items(), partial(changelog.partition, decided),
                                                   codec, skipped=skipped)
        expired = retention.rebuild(entries)
        forget(expired)
        if skipped:
            log.warning("decided: %d entries kept without retention (partition unknown or value unreadable), e.g. %r",
                        len(skipped), skipped[0])
        log.info("decided: retention rebuilt from %d entries in %.2f s, %d expired",
                 len(retention) + len(expired) + len(skipped), time.monotonic() - started, len(expired))

    @app.agent(raw_topic("outcomes"), name="outcomes")
    async def outcomes_agent(stream: Any) -> None:
        async for record in stream.events():
            if (got := decoded(record, TradeClosed)) is REGISTRY_AWAY:
                got = await decoded_once_registry_answers(record, TradeClosed)
            if got is None:
                continue
            src, trade = got
            apply(apply_outcome(trade, src), src)

    @app.agent(raw_topic("fills"), name="fills")
    async def fills_agent(stream: Any) -> None:
        async for record in stream.events():
            if (got := decoded(record, OrderFilled)) is REGISTRY_AWAY:
                got = await decoded_once_registry_answers(record, OrderFilled)
            if got is None:
                continue
            src, fill = got
            sym = fill.symbol.encode()
            if fill.leg == "EXIT" and bar_is_due(sym, ts_us := to_micros(fill.ts_event)):
                await bar_caught_up(sym, ts_us)  # its MAE/MFE count the bars up to the exit
            effects = fill_handlers.on_fill(src, fill, record=trade_record(fill.signal_id.encode()),
                                            open_index=open_trades.get(sym), bars=read(symbol_state, sym))
            apply_trades(effects, sym, src)
            for closed in effects.closed:  # applied here at once; the copy on the outcomes topic is a no-op
                metrics.outcomes.inc()
                apply_outcome(closed, src)
                sid = closed.signal_id.encode()
                if read(decided, sid) is None:  # its decision already expired (agents.retention): so does the trade
                    changelog.delete(trades, sid, src.partition)

    if settings.worker_web_port > 0:
        @app.page("/health")
        async def health_view(self: Any, request: Any) -> Any:
            return self.json(metrics.health(slot, True))

        @app.page("/metrics")
        async def metrics_view(self: Any, request: Any) -> Any:
            body, content_type = metrics.exposition()
            return self.bytes(body, content_type=content_type)

    metrics.decided_kept.set_function(lambda: len(decided.data.data))  # read when scraped
    inputs = frozenset(settings.topic(short) for short in ("bars", "signals", "outcomes", "fills"))
    metrics.lag = lambda: consumer_lag(app.consumer.assignment(), app.consumer.highwater,
                                       app.consumer._read_offset, inputs)  # Faust keeps the read offsets there
    app.rlsizer_metrics = metrics  # type: ignore[attr-defined]  # for tests and embedding
    _attach_threads(app, settings, codec, slot, load_model, reconcile_after_s, metrics)
    return app


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


def _attach_threads(app: Any, settings: Settings, codec: EventCodec, slot: Any, load_model: LoadModel,
                    reconcile_after_s: float, metrics: WorkerMetrics) -> None:
    """Run the model watcher (a thread) and the reconciler (a child process, its re-publishes counted) with the app."""

    @app.service
    class SideThreads(Service):
        threads: list[Any]
        reconciler: ReconcilerProcess | None = None

        async def on_start(self) -> None:
            self.threads = []
            dlq = EventProducer(make_producer(settings), codec, settings)
            watcher = ModelWatcher(settings, codec, consumer=make_consumer(settings, f"{app_id(settings)}-models"),
                                   dlq=dlq, slot=slot, load_model=load_model)
            watcher.start()
            self.threads.append(watcher)
            if reconcile_after_s > 0:
                self.reconciler = ReconcilerProcess(
                    settings, group_id=f"{app_id(settings)}-reconciler", after_s=reconcile_after_s,
                    loglevel=logging.getLevelName(logging.getLogger().getEffectiveLevel()),
                )
                self.reconciler.start()

        @Service.timer(5.0)
        async def _keep_reconciling(self) -> None:
            if self.reconciler is not None:
                self.reconciler.restart_if_dead()
                metrics.reconciled.inc(self.reconciler.take_republished())

        async def on_stop(self) -> None:
            reconciler, self.reconciler = self.reconciler, None
            if reconciler is not None:
                await asyncio.get_running_loop().run_in_executor(None, reconciler.stop)
                metrics.reconciled.inc(reconciler.take_republished())
            for thread in getattr(self, "threads", []):
                thread.stop()
