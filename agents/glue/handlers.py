"""The glue's logic without Faust: raw record in, table values and records out.

Each handler takes the raw record (``Source``) and the table values it needs as
bytes, decodes with our codec, calls the pure pipeline and returns what to write
back (``Effects``): new table values and outgoing records. Faust agents only
fetch table values, call a handler and apply its effects, so every rule here is
unit-tested without a broker.

Bad input never raises out of a handler: it becomes an ``EventRejected`` record
for the ``dlq`` topic with the kind and an actionable reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from agents.glue import decided_record
from agents.glue.ports import Pipeline
from agents.glue.state_cache import DecodedCache
from schemas.codec import DecodeError, EventCodec
from schemas.events import BarClosed, Event, FeaturesComputed, SignalRaised, SizeDecided, TradeClosed, utc_now
from streams.dead_letter import dead_letter, encode_dead_letter
from streams.settings import Settings
from streams.topics import event_key, topic_name


class Source(NamedTuple):
    """Where a raw record came from (a named tuple: one is built per record, at a third of a frozen dataclass's cost)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Outgoing(NamedTuple):
    """A record to send."""

    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Effects:
    """Table writes (``None`` = leave unchanged) and records to send, in order.

    ``account`` is the new account *decoded* (an ``AccountState``): it changes at
    every signal, so the glue keeps it in memory and writes its bytes once per
    batch (``agents.glue.write_behind``; ``Handlers.account_bytes``).
    """

    outgoing: tuple[Outgoing, ...] = ()
    symbol_state: bytes | None = None
    history: bytes | None = None
    account: Any = None
    decision: bytes | None = None
    rejected: bool = False


def _span(delta: timedelta) -> str:
    """``delta`` as a person reads it: ``3650.0 days``, ``2.5 hours``, ``400 s``."""
    seconds = delta.total_seconds()
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds:.0f} s"


def history_key(symbol: str, strategy_id: str) -> str:
    """Strategy history is kept per (strategy, symbol): co-partitioned with the symbol's signals."""
    return f"{strategy_id}@{symbol}"


@dataclass
class Handlers:
    settings: Settings
    codec: EventCodec
    pipeline: Pipeline
    strategy_map: Any
    slot: Any
    clock: Callable[[], datetime] = field(default=utc_now)
    metrics: Any = None  # agents.glue.metrics.WorkerMetrics, when the app exposes metrics
    cache_size: int = 64  # decoded table values remembered per kind (see agents.glue.state_cache)
    _states: DecodedCache[Any] = field(init=False, repr=False, compare=False)
    _histories: DecodedCache[Any] = field(init=False, repr=False, compare=False)
    _accounts: DecodedCache[Any] = field(init=False, repr=False, compare=False)
    _max_future: timedelta | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        limit = self.settings.max_future_seconds
        self._max_future = timedelta(seconds=limit) if limit > 0 else None
        p = self.pipeline
        self._states = DecodedCache(p.symbol_state_from_bytes, self.cache_size)
        self._histories = DecodedCache(p.history_from_bytes, self.cache_size)
        self._accounts = DecodedCache(p.account_from_bytes, self.cache_size)

    # -- helpers -------------------------------------------------------------------
    def reject(self, src: Source, kind: str, reason: str) -> Effects:
        if self.metrics is not None:
            self.metrics.rejected(kind)
        letter = dead_letter(src.topic, src.partition, src.offset, src.key, src.value, reason, kind)
        topic, key, value = encode_dead_letter(self.codec, self.settings, letter)
        return Effects(outgoing=(Outgoing(topic, key, value),), rejected=True)

    def decode(self, src: Source, expected: type[Event]) -> Event | Effects:
        """The record's event, or the dead letter for it: undecodable, another event type, or from the future.

        An event stamped more than ``max_future_seconds`` ahead of this worker's clock
        is a clock or unit bug in its adapter (milliseconds or nanoseconds sent as
        microseconds). Accepted, it would move the symbol's bar clock and decided-signal
        watermark years ahead, and every later, correctly stamped input of the symbol
        would be refused as out of order or stale.
        """
        try:
            event = self.codec.decode(src.value, expected)  # type: ignore[arg-type]
        except DecodeError as exc:
            if exc.kind == "wrong_schema":
                return self.reject(src, "wrong_schema", f"{exc.reason}: topic {src.topic} carries {expected.__name__}")
            return self.reject(src, exc.kind, f"{exc.reason} (topic {src.topic} expects {expected.__name__})")
        if self._max_future is not None and (ahead := event.ts_event - self.clock()) > self._max_future:
            return self.reject(
                src, "future_timestamp",
                f"{expected.__name__} ts_event {event.ts_event.isoformat()} is {_span(ahead)} ahead of the worker's "
                f"clock (more than RLSIZER_MAX_FUTURE_SECONDS={self.settings.max_future_seconds:g}): a clock or "
                f"unit error in the adapter (ts_event is microseconds since the epoch, UTC)",
            )
        return event

    def _out(self, event: Event) -> Outgoing:
        topic = topic_name(self.settings, type(event))
        return Outgoing(topic, event_key(event), self.codec.encode(topic, event))

    def symbol_state_of(self, raw: bytes | None) -> Any:
        """The symbol's bar state stored as ``raw`` (``None`` for ``None``); raises ``StateCorrupt`` for bad bytes."""
        return self._states.get(raw) if raw is not None else None

    def account_of(self, raw: bytes | None) -> Any:
        """The account stored as ``raw`` (empty for ``None``); raises ``StateCorrupt`` for bad bytes."""
        return self._accounts.get(raw) if raw is not None else self.pipeline.empty_account()

    def account_bytes(self, account: Any) -> bytes:
        """``account`` as table bytes (remembered, so reading them back does not decode)."""
        raw = account.to_bytes()
        self._accounts.put(raw, account)
        return raw

    # -- bars ----------------------------------------------------------------------
    def on_bar(self, src: Source, bar: BarClosed, state: bytes | None) -> Effects:
        p = self.pipeline
        try:
            current = self._states.get(state) if state is not None else None
            new = p.on_bar(current, bar)
        except p.bar_rejected as exc:
            kind = getattr(exc, "kind", "rejected_bar")
            reason = getattr(exc, "reason", str(exc))
            return self.reject(src, kind, f"bar {bar.symbol} {bar.interval} at {bar.ts_event.isoformat()}: {reason}")
        raw = new.to_bytes()
        self._states.put(raw, new)
        return Effects(symbol_state=raw)

    # -- signals -------------------------------------------------------------------
    def on_signal(
        self,
        src: Source,
        signal: SignalRaised,
        *,
        decided: bytes | None,
        symbol_state: bytes | None,
        history: bytes | None,
        account: Any,
    ) -> Effects:
        """Decide once; a duplicate ``signal_id`` gets the stored decision again, never a new one.

        ``decided`` is the signal's ``decided`` table value (``agents.glue.decided_record``);
        ``account`` is the symbol's account decoded (``account_of``). ``Effects.decision``
        is the encoded decision alone.
        """
        if decided is not None:
            stored, _ = decided_record.unpack(decided)
            again = (Outgoing(self.settings.topic("decisions"), event_key(signal), stored),)
            return Effects(outgoing=again, account=self._counted(account, stored))
        p = self.pipeline
        started = time.perf_counter_ns()
        state = self._states.get(symbol_state) if symbol_state is not None else None
        hist = self._histories.get(history) if history is not None else p.empty_history(signal.strategy_id)
        acct = account
        try:
            features, decision = p.on_signal(
                signal,
                symbol_state=state,
                history=hist,
                account=acct,
                strategy_map=self.strategy_map,
                slot=self.slot,
                now=self.clock(),
            )
        except p.unknown_strategy as exc:
            return self.reject(
                src,
                "unknown_strategy",
                f"signal {signal.signal_id}: {exc}",  # the error says how to map it (RLSIZER_STRATEGY_MAP)
            )
        assert isinstance(features, FeaturesComputed) and isinstance(decision, SizeDecided)
        if decision.latency_us == 0:  # pure code may leave timing to the glue
            decision = replace(decision, latency_us=(time.perf_counter_ns() - started) // 1000)
        out_decision = self._out(decision)
        if self.metrics is not None:
            self.metrics.decided(decision)
        return Effects(
            outgoing=(self._out(features), out_decision),
            account=p.on_decision(acct, decision),
            decision=out_decision.value,
        )

    def _counted(self, account: Any, decided: bytes) -> Any:
        """``account`` with the stored decision counted, or ``None`` when it already is.

        A worker that stopped after recording a decision but before writing the
        account back decides the signal again from the stored decision: the
        account must count it then (``on_decision`` is idempotent on signal_id).
        """
        try:
            stored = self.codec.decode(decided)
        except DecodeError:
            return None
        counted = self.pipeline.on_decision(account, stored) if isinstance(stored, SizeDecided) else account
        return None if counted is account else counted

    # -- outcomes ------------------------------------------------------------------
    def on_outcome(self, src: Source, trade: TradeClosed, *, history: bytes | None, account: Any) -> Effects:
        """Strategy history (bytes) and account (decoded, ``account_of``) after ``trade`` closed."""
        p = self.pipeline
        hist = self._histories.get(history) if history is not None else p.empty_history(trade.strategy_id)
        try:
            new_hist, new_acct = p.on_trade_closed(hist, account, trade)
        except ValueError as exc:
            return self.reject(src, "invalid_value", f"trade {trade.signal_id}: {exc}")
        raw_hist = new_hist.to_bytes()
        self._histories.put(raw_hist, new_hist)
        return Effects(history=raw_hist, account=new_acct)
