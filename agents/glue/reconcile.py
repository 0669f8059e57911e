"""The reconciler: every signal gets a decision, even when the Faust consumer skips records.

Why this exists. Two Faust workers on tansu were seen skipping 2-6 of 12,000
records during a rebalance, with the skipped offsets left uncommitted. Reading
faust 0.15.3 (``faust/transport/consumer.py``) shows how records are dropped
after aiokafka has already moved its fetch position past them:

- ``Consumer.getmany`` iterates over a fetched batch and silently drops records
  whose partition is not in ``active_partitions`` -- and that set is the live,
  mutable set that rebalancing and table recovery edit (``pause_partitions``,
  ``on_partitions_revoked``) while the iteration is suspended at an ``await``;
  it also ``break``s out of the batch when the generation id changes or flow is
  suspended. aiokafka's position for a partition that stays (or comes back)
  without a fresh assignment is already past the dropped records, so they are
  never fetched again;
- the dropped offsets are never acked, so ``_new_offset`` stops at the hole
  (``min(acked) - committed > 1`` -> no commit): the offsets stay uncommitted
  and only a later restart would replay them.

Neither is a setting. Rather than patch Faust's private iteration, the contract
is enforced end to end by this loop, independent of Faust: a plain
confluent-kafka consumer (own group, range assignment, so partition *p* of
``signals`` and of ``decisions`` -- both keyed by symbol, same partition count --
land on the same member) tracks signals without a decision. A signal still
undecided ``after_s`` seconds after it was seen, while a later signal of its
partition has been decided (so it was skipped, not merely queued), is re-published unchanged (same
key, same partition) to ``signals``; the worker then decides it, or, if it had
decided it after all, re-sends the stored decision (the ``decided`` table), so a
signal never gets two different decisions. Records are read only as far as their
ids, symbol and time (``EventCodec.decode_head``): it reads every signal and decision. It runs in
a child process of the worker (``agents.glue.reconcile_process``), off the GIL of
the worker's event loop. A signal is decoded in full only when
it is due: one the worker dead-lettered (invalid) is dropped then, not re-published, and
so is one older than the worker's decided-signal retention (``agents.retention``: the
worker dead-letters it as stale; the decisions seen give each symbol's watermark). Its committed offset on ``signals``
is the oldest undecided signal, so after a SIGKILL the next reconciler resumes
from there: nothing pending is forgotten.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from collections.abc import Callable
from functools import partial
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from agents.glue.registry_wait import call_once_registry_answers
from agents.retention import horizon_from_days, is_stale
from agents.timestamps import to_micros
from schemas.codec import DecodeError, EventCodec, RegistryUnavailable
from schemas.events import SignalRaised, SizeDecided, utc_now
from streams.settings import Settings

log = logging.getLogger(__name__)
DECIDED_MEMORY = 500_000
HEAD: Final = ("ts_event", "signal_id", "strategy_id", "symbol")  # all the reconciler reads of a signal or a decision


@dataclass(slots=True)
class _Pending:
    signal_id: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    due: float
    retries: int = 0


@dataclass(slots=True)
class ReconcileState:
    """Undecided signals and recently decided ids; pure bookkeeping, no I/O."""

    after_s: float
    horizon_us: int = 0  # the worker's decided retention (``agents.retention``); 0: none
    pending: dict[str, _Pending] = field(default_factory=dict)
    decided: OrderedDict[str, None] = field(default_factory=OrderedDict)
    next_signal_offset: dict[int, int] = field(default_factory=dict)
    next_decision_offset: dict[int, int] = field(default_factory=dict)
    decided_upto: dict[int, int] = field(default_factory=dict)
    watermarks: dict[str, int] = field(default_factory=dict)  # symbol -> latest ts_event (us) of a decision seen

    def saw_signal(self, signal_id: str, partition: int, offset: int, key: bytes | None, value: bytes, now: float) -> None:
        self.next_signal_offset[partition] = max(self.next_signal_offset.get(partition, 0), offset + 1)
        if signal_id in self.decided:
            # Its decision was read first (catching up a backlog reads both topics in
            # any order): it still proves the worker got past this offset.
            self.decided_upto[partition] = max(self.decided_upto.get(partition, -1), offset)
            return
        if signal_id in self.pending:
            return
        self.pending[signal_id] = _Pending(signal_id, partition, offset, key, value, now + self.after_s)

    def saw_decision(self, signal_id: str, partition: int, offset: int, *, symbol: str | None = None,
                     ts_us: int | None = None) -> None:
        if symbol is not None and ts_us is not None and ts_us > self.watermarks.get(symbol, ts_us - 1):
            self.watermarks[symbol] = ts_us
        self.next_decision_offset[partition] = max(self.next_decision_offset.get(partition, 0), offset + 1)
        settled = self.pending.pop(signal_id, None)
        if settled is not None:
            self.decided_upto[settled.partition] = max(self.decided_upto.get(settled.partition, -1), settled.offset)
        self.decided[signal_id] = None
        if len(self.decided) > DECIDED_MEMORY:
            self.decided.popitem(last=False)

    def saw_undecidable(self, signal_id: str, partition: int, offset: int) -> None:
        """A signal the worker dead-letters on sight (unknown strategy, a ts_event from the future): settled as if decided, its offset passed."""
        self.saw_decision(signal_id, -1, -1)
        self.next_decision_offset.pop(-1, None)
        self.next_signal_offset[partition] = max(self.next_signal_offset.get(partition, 0), offset + 1)

    def stale(self, symbol: str, ts_us: int) -> bool:
        """The worker dead-letters this signal as stale, by the decisions seen so far (``agents.retention``).

        The decisions reach this reader after the worker made them, so its watermark is
        never ahead of the worker's: a signal it calls stale, the worker does too.
        """
        return is_stale(ts_us, self.watermarks.get(symbol), self.horizon_us)

    def drop(self, signal_id: str) -> None:
        """Stop tracking ``signal_id`` (the worker dead-letters it: it will never have a decision)."""
        self.pending.pop(signal_id, None)

    def due(self, now: float) -> list[_Pending]:
        """Skipped signals: past their deadline *and* overtaken by a decided later signal of
        their partition. A worker that is merely behind (backlog, restart) is left alone --
        re-publishing then would only add load; its replay from the committed offset
        decides them. Each one returned is rescheduled (retried every ``after_s``)."""
        late = [p for p in self.pending.values() if p.due <= now and self.decided_upto.get(p.partition, -1) > p.offset]
        for p in late:
            p.due = now + self.after_s
            p.retries += 1
        return late

    def commit_offsets(self, signals_topic: str, decisions_topic: str) -> list[TopicPartition]:
        oldest: dict[int, int] = {}
        for p in self.pending.values():
            oldest[p.partition] = min(oldest.get(p.partition, p.offset), p.offset)
        out = [
            TopicPartition(signals_topic, part, oldest.get(part, nxt)) for part, nxt in self.next_signal_offset.items()
        ]
        out += [TopicPartition(decisions_topic, part, nxt) for part, nxt in self.next_decision_offset.items()]
        return out

    def forget(self, partitions: set[int]) -> None:
        self.pending = {k: p for k, p in self.pending.items() if p.partition not in partitions}
        for part in partitions:
            self.decided_upto.pop(part, None)
            self.next_signal_offset.pop(part, None)
            self.next_decision_offset.pop(part, None)


class Reconciler:
    """Runs ``ReconcileState`` against the broker in a daemon thread (``start``/``stop``)."""

    def __init__(
        self,
        settings: Settings,
        codec: EventCodec,
        *,
        consumer: Consumer,
        producer: Producer,
        after_s: float,
        decidable: Callable[[str], bool] = lambda strategy_id: True,
        commit_every_s: float = 1.0,
        check_every_s: float = 0.25,
    ) -> None:
        """``decidable(strategy_id)`` is False for signals the worker dead-letters (unknown strategy)."""
        self._settings = settings
        self._codec = codec
        self._consumer = consumer
        self._producer = producer
        self._signals = settings.topic("signals")
        self._decisions = settings.topic("decisions")
        self.state = ReconcileState(after_s=after_s, horizon_us=horizon_from_days(settings.decided_retention_days))
        self._commit_every_s = commit_every_s
        self._check_every_s = min(check_every_s, after_s)
        self._decidable = decidable
        self._max_future_us = int(settings.max_future_seconds * 1_000_000)  # the worker's future_timestamp rule
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)
        self.republished = 0

    def start(self) -> None:
        self._consumer.subscribe([self._signals, self._decisions], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def running(self) -> bool:
        """The consuming thread is alive (it ends on ``stop`` or on an error it could not handle)."""
        return self._thread.is_alive()

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("reconciler assigned %s", sorted((tp.topic, tp.partition) for tp in partitions))

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._commit()
        self.state.forget({tp.partition for tp in partitions})

    def _commit(self) -> None:
        offsets = self.state.commit_offsets(self._signals, self._decisions)
        if offsets:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as exc:  # a rebalance in flight: the next commit catches up
                log.warning("reconciler commit failed: %s", exc)

    def _run(self) -> None:
        last_commit = last_check = time.monotonic()
        try:
            while not self._stop.is_set():
                records = []
                for msg in self._consumer.consume(500, 0.05):
                    if msg.error():
                        if msg.error().code() != KafkaError._PARTITION_EOF:
                            log.warning("reconciler consume error: %s", msg.error())
                        continue
                    records.append(msg)
                if records:
                    # not bad records: waited for, none skipped (recording one twice changes nothing)
                    call_once_registry_answers(partial(self._record_all, records), self._stop, "reconciler")
                now = time.monotonic()
                if now - last_check >= self._check_every_s:  # scanning every pending signal is not free
                    self._republish_due(now)
                    last_check = now
                if len(self._producer):  # re-published signals awaiting their delivery report
                    self._producer.poll(0)
                if now - last_commit >= self._commit_every_s:
                    self._commit()
                    last_commit = now
        finally:
            self._producer.flush(5)
            self._commit()
            self._consumer.close()

    def _republish_due(self, now: float) -> None:
        for p in self.state.due(now):
            try:
                signal = self._codec.decode(p.value)
            except DecodeError:
                signal = None
            except RegistryUnavailable as exc:  # it stays due: the next check tries again
                log.warning("reconciler: %s; signal at %s[%d]@%d re-checked later", exc, self._signals, p.partition,
                            p.offset)
                continue
            if not isinstance(signal, SignalRaised):  # the worker dead-letters it: no decision will ever come
                self.state.drop(p.signal_id)
                continue
            if self.state.stale(signal.symbol, to_micros(signal.ts_event)):  # dead-lettered too (agents.retention)
                self.state.drop(p.signal_id)
                log.warning("signal at %s[%d]@%d undecided and older than the decided-signal retention allows for %s "
                            "(the worker dead-letters it as stale): not re-published",
                            self._signals, p.partition, p.offset, signal.symbol)
                continue
            self._producer.produce(self._signals, value=p.value, key=p.key, partition=p.partition)
            self.republished += 1
            log.warning("signal at %s[%d]@%d undecided after %.1fs: re-published (retry %d)",
                        self._signals, p.partition, p.offset, self.state.after_s * p.retries, p.retries)

    def _record_all(self, msgs: list[Any]) -> None:
        """Track the signals and decisions among ``msgs``, in their order.

        Only ids are read (``decode_head``, a few us a record). Records that do not
        decode are the worker's to dead-letter: skipped here.
        """
        now = time.monotonic()
        latest_us = to_micros(utc_now()) + self._max_future_us  # later signals are the worker's to dead-letter
        state = self.state
        for msg in msgs:
            try:
                event_type, head = self._codec.decode_head(msg.value(), HEAD)
            except DecodeError:
                continue
            topic = msg.topic()
            if topic == self._signals and event_type is SignalRaised:
                if not self._decidable(head["strategy_id"]) or (self._max_future_us
                                                                and to_micros(head["ts_event"]) > latest_us):
                    state.saw_undecidable(head["signal_id"], msg.partition(), msg.offset())
                    continue
                state.saw_signal(head["signal_id"], msg.partition(), msg.offset(), msg.key(), msg.value(), now)
            elif topic == self._decisions and event_type is SizeDecided:
                state.saw_decision(head["signal_id"], msg.partition(), msg.offset(), symbol=head["symbol"],
                                   ts_us=to_micros(head["ts_event"]))
