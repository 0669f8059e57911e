"""The worker's input path, without Faust: one record of the inputs topic in, table writes and records out.

Read top to bottom, a record's trip is ``InputPath.handle``:

1. **decode** (``_decode``): the Confluent-framed Avro record, by its schema id, into a
   ``BarClosed``, ``SignalRaised`` or ``OrderFilled``; anything else -- undecodable,
   another event type, invalid values, stamped ahead of the clock, on a partition
   its symbol's key does not map to -- is dead-lettered with the reason;
2. **already applied?** the symbol's book (``agents.book``) records the last input it
   applied: a record at or before it is input read again after a crash or broker
   restart, and is skipped (its outputs were acknowledged before the book was
   written: ``agents.glue.book_store``);
3. **apply** it to the book: ``_on_bar``, ``_on_signal`` or ``_on_fill``, each ending
   with the book at this record's position.

Rules of the signal path, all here: a signal already decided gets its stored
decision again, never a new one (the ``decided`` table, ``agents.glue.decided_record``);
a signal stored at *this* position is the worker re-processing after a crash: its
stored decision is applied to the book again; a signal older than its symbol's
retention horizon with no entry is stale (dead-lettered, never decided); decided
entries expire by event time (``agents.retention``).

What a decision sees: exactly the inputs of its symbol that precede it in the log
(one partition, offset order), read point-in-time (stamped at or before the signal).
``rlsizer backtest`` replays the same inputs in the same order through the same
``agents.book`` functions, so live equals replay (docs/DETERMINISM.md).

No Faust, no Kafka: the glue (``agents.app``) reads records, gives this the tables
through the ``Tables`` port and hands the returned records to the producer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple, Protocol

from agents import book as books
from agents.book import SymbolBook
from agents.features import BarRejected
from agents.glue import decided_record
from agents.outcomes import OutcomeRejected
from agents.retention import DecidedRetention, Expired, horizon_from_days
from agents.sizing import PolicySlot
from agents.strategy_map import StrategyMap, UnknownStrategy
from agents.timestamps import from_micros, to_micros
from config.settings import Settings
from schemas.codec import DecodeError, EventCodec
from schemas.events import BarClosed, OrderFilled, SignalRaised, SizeDecided
from streams.dead_letter import dead_letter, encode_dead_letter
from streams.partitioner import partition_for
from streams.topics import INPUT_EVENTS, event_key

_DLQ_NAMESPACE: Final = uuid.UUID("0b8e4d52-3f0e-4d5e-9a57-6c1f8f5d2b11")


class Source(NamedTuple):
    """Where a raw record came from (a named tuple: one is built per record)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Outgoing(NamedTuple):
    """A record to send; ``partition`` None: placed by its key (dead letters), else the input's partition."""

    topic: str
    key: bytes
    value: bytes
    partition: int | None


class Tables(Protocol):
    """The worker's state as the input path sees it (``agents.glue.book_store`` on Faust tables)."""

    def book(self, symbol: str) -> SymbolBook | None: ...

    def put_book(self, book: SymbolBook, partition: int) -> None: ...

    def decided(self, signal_id: str) -> bytes | None: ...

    def record(self, signal_id: str, value: bytes, partition: int) -> None: ...

    def forget(self, signal_id: str, partition: int) -> None: ...


class Metrics(Protocol):  # agents.glue.metrics.WorkerMetrics
    def decided(self, decision: SizeDecided) -> None: ...

    def rejected(self, kind: str) -> None: ...

    def closed(self) -> None: ...

    def reread(self) -> None: ...

    def expired(self, n: int) -> None: ...


class _NoMetrics:
    def decided(self, decision: SizeDecided) -> None: ...

    def rejected(self, kind: str) -> None: ...

    def closed(self) -> None: ...

    def reread(self) -> None: ...

    def expired(self, n: int) -> None: ...


@dataclass
class InputPath:
    settings: Settings
    codec: EventCodec
    strategy_map: StrategyMap
    slot: PolicySlot
    partitions: Callable[[], int]  # partitions of the inputs topic (the key check)
    # the clocks, given by the edge (agents.app: the wall clock and time.perf_counter_ns) so this path reads none
    clock: Callable[[], datetime]  # ts_init of the events made, and the future-timestamp check
    timer_ns: Callable[[], int]  # a decision's latency_us: nanoseconds from any fixed start
    metrics: Metrics = field(default_factory=_NoMetrics)
    retention: DecidedRetention = field(init=False)

    def __post_init__(self) -> None:
        self.retention = DecidedRetention(horizon_from_days(self.settings.decided_retention_days))
        limit = self.settings.max_future_seconds
        self._max_future = timedelta(seconds=limit) if limit > 0 else None
        self._decisions = self.settings.topic("decisions")
        self._features = self.settings.topic("features")
        self._outcomes = self.settings.topic("outcomes")

    # -- the trip ----------------------------------------------------------------------------
    def handle(self, src: Source, tables: Tables) -> list[Outgoing]:
        """Apply one input record; returns the records to send, in order."""
        event = self._decode(src)
        if isinstance(event, list):  # its dead letter
            return event
        symbol = event.symbol
        book = tables.book(symbol) or SymbolBook.empty(symbol)
        if book.applied(src.partition, src.offset):
            self.metrics.reread()
            return []
        if isinstance(event, BarClosed):
            book, out = self._on_bar(src, book, event)
        elif isinstance(event, SignalRaised):
            book, out = self._on_signal(src, book, event, tables)
        else:
            book, out = self._on_fill(src, book, event, tables)
        tables.put_book(books.at(book, src.partition, src.offset), src.partition)
        return out

    # -- 1. decode ---------------------------------------------------------------------------
    def _decode(self, src: Source) -> BarClosed | SignalRaised | OrderFilled | list[Outgoing]:
        """The record's event, or its dead letter (see the module doc)."""
        try:
            event = self.codec.decode(src.value)  # no value (a tombstone) is refused as malformed
        except DecodeError as exc:
            return self.reject(
                src, exc.kind, f"{exc.reason} (topic {src.topic} carries {', '.join(t.__name__ for t in INPUT_EVENTS)})"
            )
        if not isinstance(event, INPUT_EVENTS):
            return self.reject(
                src,
                "wrong_schema",
                f"a {type(event).__name__} on {src.topic}, which carries {', '.join(t.__name__ for t in INPUT_EVENTS)}",
            )
        name = type(event).__name__
        if self._max_future is not None and (ahead := event.ts_event - self.clock()) > self._max_future:
            return self.reject(
                src,
                "future_timestamp",
                f"{name} ts_event {event.ts_event.isoformat()} is {_span(ahead)} ahead of the worker's clock (more "
                f"than RLSIZER_MAX_FUTURE_SECONDS={self.settings.max_future_seconds:g}): a clock or unit error in the "
                f"adapter (ts_event is microseconds since the epoch, UTC)",
            )
        due = partition_for(event.symbol.encode(), self.partitions())
        if src.partition != due:
            return self.reject(
                src,
                "wrong_partition",
                f"{name} of {event.symbol!r} came on partition {src.partition}, but a symbol's inputs must all be on "
                f"the partition its key maps to ({due}): key the record by its symbol (UTF-8) and use Kafka's default "
                f"murmur2 partitioner (librdkafka: partitioner=murmur2_random)",
            )
        return event

    # -- 3. apply ----------------------------------------------------------------------------
    def _on_bar(self, src: Source, book: SymbolBook, bar: BarClosed) -> tuple[SymbolBook, list[Outgoing]]:
        try:
            return books.with_bar(book, bar), []
        except BarRejected as exc:
            return book, self.reject(
                src, exc.kind, f"bar {bar.symbol} {bar.interval} at {bar.ts_event.isoformat()}: {exc.reason}"
            )

    def _on_signal(
        self, src: Source, book: SymbolBook, signal: SignalRaised, tables: Tables
    ) -> tuple[SymbolBook, list[Outgoing]]:
        stored = tables.decided(signal.signal_id)
        if stored is not None:
            entry = decided_record.unpack(stored)
            again = Outgoing(self._decisions, event_key(signal), entry.decision, src.partition)
            if not entry.at(src.partition, src.offset):  # a repeat of a decided signal: the same answer
                return book, [again]
            # decided here before a crash, the book written before it: apply the stored decision again
            decision = self.codec.decode(entry.decision, SizeDecided)
            computed = books.signal_features(book, signal, strategy_map=self.strategy_map, now=self.clock())
            features = Outgoing(
                self._features, event_key(signal), self.codec.encode(self._features, computed), src.partition
            )
            return books.with_decision(book, decision), [features, again]
        ts_us = to_micros(signal.ts_event)
        if books.stale(book, ts_us, self.retention.horizon_us):
            return book, self._stale(src, signal, book)
        started = self.timer_ns()
        try:
            book, computed, decision = books.decided(
                book, signal, strategy_map=self.strategy_map, slot=self.slot, now=self.clock()
            )
        except UnknownStrategy as exc:
            return book, self.reject(src, "unknown_strategy", f"signal {signal.signal_id}: {exc}")
        decision = replace(decision, latency_us=(self.timer_ns() - started) // 1000)
        out_decision = self.codec.encode(self._decisions, decision)
        # recorded before it is sent: a replay re-sends it, never decides again
        tables.record(
            signal.signal_id,
            decided_record.pack(out_decision, src.value or b"", partition=src.partition, offset=src.offset),
            src.partition,
        )
        self._forget(tables, self.retention.note(signal.symbol, ts_us, signal.signal_id.encode(), src.partition))
        self.metrics.decided(decision)
        key = event_key(signal)
        return book, [
            Outgoing(self._features, key, self.codec.encode(self._features, computed), src.partition),
            Outgoing(self._decisions, key, out_decision, src.partition),
        ]

    def _on_fill(
        self, src: Source, book: SymbolBook, fill: OrderFilled, tables: Tables
    ) -> tuple[SymbolBook, list[Outgoing]]:
        sid = fill.signal_id
        stored = tables.decided(sid)
        entry = decided_record.unpack(stored) if stored is not None else None
        if _redelivered(fill, book, entry):  # the same fill again: nothing to apply; an exit gets its outcome again
            if fill.leg == "EXIT" and entry is not None and entry.closed is not None:
                return book, [Outgoing(self._outcomes, fill.symbol.encode(), entry.closed, src.partition)]
            return book, []
        signal = self.codec.decode(entry.signal, SignalRaised) if entry is not None and entry.signal else None
        try:
            book, closed = books.with_fill(
                book,
                fill,
                signal=signal,
                closed=entry is not None and entry.exit_event_id is not None,
                now=self.clock(),
            )
        except OutcomeRejected as exc:
            return book, self.reject(src, exc.kind, exc.reason)
        if closed is None:
            return book, []
        out = self.codec.encode(self._outcomes, closed)
        if entry is not None:  # expired entries (agents.retention) have nothing to record it in
            tables.record(sid, decided_record.with_closed(entry, fill.event_id, out), src.partition)
        self.metrics.closed()
        return book, [Outgoing(self._outcomes, fill.symbol.encode(), out, src.partition)]

    # -- retention -----------------------------------------------------------------------------
    def _stale(self, src: Source, signal: SignalRaised, book: SymbolBook) -> list[Outgoing]:
        latest = from_micros(book.watermark or 0).isoformat()
        return self.reject(
            src,
            "stale_signal",
            f"signal {signal.signal_id} at {signal.ts_event.isoformat()} is more than "
            f"{self.settings.decided_retention_days:g} days older than the latest decided signal of {signal.symbol} "
            f"({latest}). The worker remembers decisions that long (RLSIZER_DECIDED_RETENTION_DAYS), so it cannot "
            f"tell whether this signal was decided before, and it does not decide it: a repeat must never get a "
            f"second, different decision",
        )

    def _forget(self, tables: Tables, expired: list[Expired]) -> None:
        """Delete expired ``decided`` entries (an open trade of one lives on in its book)."""
        for key, partition in expired:
            tables.forget(key.decode(), partition)
        if expired:
            self.metrics.expired(len(expired))

    def rebuild_retention(self, entries: Any, tables: Tables) -> None:
        """The retention index from the ``decided`` entries recovered after a rebalance
        (``decided_record.retention_entries``); entries already past their horizon are deleted."""
        self._forget(tables, self.retention.rebuild(entries))

    # -- dead letters ------------------------------------------------------------------------
    def reject(self, src: Source, kind: str, reason: str) -> list[Outgoing]:
        """The dead letter of ``src``: its event id derives from the record's position, so a record
        read again after a crash is dead-lettered again under the same id (consumers deduplicate)."""
        self.metrics.rejected(kind)
        letter = dead_letter(src.topic, src.partition, src.offset, src.key, src.value, reason, kind)
        letter = replace(letter, event_id=str(uuid.uuid5(_DLQ_NAMESPACE, f"{src.topic}:{src.partition}:{src.offset}")))
        topic, key, value = encode_dead_letter(self.codec, self.settings, letter)
        return [Outgoing(topic, key, value, None)]


def _redelivered(fill: OrderFilled, book: SymbolBook, entry: decided_record.Decided | None) -> bool:
    """``fill`` (same event id) was applied before: the entry of the open trade, or the exit of a closed one."""
    trade = book.trades.get(fill.signal_id)
    if fill.leg == "ENTRY":
        return trade is not None and trade.entry_event_id == fill.event_id
    return trade is None and entry is not None and entry.exit_event_id == fill.event_id


def _span(delta: timedelta) -> str:
    """``delta`` as a person reads it: ``3650.0 days``, ``2.5 hours``, ``400 s``."""
    seconds = delta.total_seconds()
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds:.0f} s"


__all__ = ["InputPath", "Outgoing", "Source", "Tables"]
