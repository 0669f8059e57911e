"""Adapter SDK: what a Python trading bot uses to talk to rlsizer.

    from streams.adapter_sdk import AdapterClient, DecisionTimeout
    from streams.codec_factory import make_codec
    from config.settings import Settings

    settings = Settings.from_env()
    with AdapterClient(settings, make_codec(settings), adapter_name="my-bot") as client:
        client.publish_bar(bar)                       # every closed bar
        answer = client.request_decision(signal, timeout_s=0.5)
        qty = client.qty_for(signal, answer)          # decision.qty, or base_qty on timeout
        ...
        client.publish_fill(entry_fill)               # and later the exit fill

Everything goes to the one ``inputs`` topic keyed by symbol, in call order (one request
in flight, so retries cannot reorder): publish a bar, then the fills at that bar, then
the bar's signals -- a decision sees exactly what was published before its signal
(docs/DETERMINISM.md).

**On timeout** (``DecisionTimeout``) the bot trades at multiplier 1.0, i.e. its
own ``base_qty`` (``qty_for`` does this). Why 1.0 and not a local copy of the
rule policy: the rules need the worker's feature state (60+ features over the bar
history), which the bot does not have; 1.0 is exactly what the bot would have
done without rlsizer, the baseline every policy is measured against, so a slow
or absent sizer can never make the bot riskier than it was. The fills carry the
quantity actually traded, so outcomes stay correct even if a late decision
arrives. **Never** republish the signal under a new ``signal_id``: that is a
second signal in the event log (counted twice in training, possibly sized
twice). Republishing the *same* ``signal_id`` is safe: rlsizer deduplicates on it
and answers with the same decision.

One background thread reads the decisions topic for the whole client (its own
assignment of every partition, starting at the end, no consumer group join);
``request_decision`` registers a future keyed by ``signal_id`` *before*
publishing, so thousands of in-flight signals cost one consumer.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, TopicPartition

from config.settings import Settings
from schemas.codec import DecodeError, EventCodec
from schemas.events import BarClosed, OrderFilled, SignalRaised, SizeDecided
from streams.consumer import make_consumer
from streams.end_offsets import end_offsets
from streams.producer import EventProducer, make_producer
from streams.topics import topic_name

log = logging.getLogger(__name__)

DEFAULT_MULTIPLIER: Final = 1.0
RECENT_DECISIONS: Final = 10_000
_POLL_S: Final = 0.02


class AdapterError(RuntimeError):
    """The client cannot reach Kafka or the decisions topic."""


@dataclass(frozen=True, slots=True)
class DecisionTimeout:
    """No ``SizeDecided`` arrived within the budget: trade at ``DEFAULT_MULTIPLIER`` (see module doc)."""

    signal_id: str
    waited_s: float
    multiplier: float = DEFAULT_MULTIPLIER


class AdapterClient:
    """Publish bars, signals and fills; receive decisions. Use as a context manager or call ``start``/``close``.

    ``on_decision`` (optional) sees every ``SizeDecided`` read after ``start``, also
    those of other bots on the same topics; it runs on the reader thread, so keep it short.
    ``default_timeout_s`` defaults to ``settings.decision_timeout_ms``.
    """

    def __init__(
        self,
        settings: Settings,
        codec: EventCodec,
        *,
        adapter_name: str = "sdk",
        group_id: str | None = None,
        default_timeout_s: float | None = None,
        on_decision: Callable[[SizeDecided], None] | None = None,
    ) -> None:
        self.settings = settings
        self.adapter_name = adapter_name
        self._codec = codec
        self._events: EventProducer | None = None  # made at the first send, released by close
        self._group_id = group_id or f"rlsizer-adapter-{adapter_name}-{uuid.uuid4().hex[:8]}"
        self._timeout_s = default_timeout_s if default_timeout_s is not None else settings.decision_timeout_ms / 1000
        self._on_decision = on_decision
        self._lock = threading.Lock()
        self._pending: dict[str, Future[SizeDecided]] = {}
        self._recent: OrderedDict[str, SizeDecided] = OrderedDict()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.undecodable = 0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout_s: float = 15.0) -> AdapterClient:
        """Start reading decisions; returns once positioned at the end of every partition."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name=f"decisions-{self.adapter_name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise AdapterError(f"decisions consumer not ready after {timeout_s}s ({self.settings.kafka_bootstrap})")
        if self._error is not None:
            raise AdapterError(f"decisions consumer failed: {self._error}") from self._error
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        if self._events is not None:
            self._events.flush(10.0)
            self._events = None  # librdkafka's handle goes now, not when the broker is already gone

    def __enter__(self) -> AdapterClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- publishing ------------------------------------------------------------------------
    def _producer(self) -> EventProducer:
        events = self._events
        if events is None:
            with self._lock:
                if self._events is None:
                    # one request in flight: a retried batch cannot overtake the next one, so a symbol's inputs
                    # stay in the order they were published (docs/DETERMINISM.md; tansu refuses idempotence)
                    producer = make_producer(self.settings, **{"max.in.flight.requests.per.connection": 1})
                    self._events = EventProducer(producer, self._codec, self.settings)
                events = self._events
        return events

    def publish_bar(self, bar: BarClosed) -> None:
        self._producer().send(bar)

    def publish_signal(self, signal: SignalRaised) -> None:
        self._producer().send(signal)

    def publish_fill(self, fill: OrderFilled) -> None:
        self._producer().send(fill)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until everything published is delivered (raises ``ProduceError`` otherwise)."""
        self._producer().flush(timeout_s)

    # -- decisions -------------------------------------------------------------------------
    def request_decision(self, signal: SignalRaised, timeout_s: float | None = None) -> SizeDecided | DecisionTimeout:
        return self.request_decisions([signal], timeout_s)[0]

    def request_decisions(
        self, signals: Sequence[SignalRaised], timeout_s: float | None = None
    ) -> list[SizeDecided | DecisionTimeout]:
        """Publish ``signals`` and wait (one shared deadline) for the decision of each."""
        if self._thread is None:
            raise AdapterError("call start() (or use the client as a context manager) before requesting decisions")
        budget = self._timeout_s if timeout_s is None else timeout_s
        futures = [self._expect(s.signal_id) for s in signals]
        start = time.monotonic()
        for s in signals:  # sent within linger.ms; delivery errors surface at flush()/close()
            self._producer().send(s)
        deadline = start + budget
        answers: list[SizeDecided | DecisionTimeout] = []
        for s, fut in zip(signals, futures, strict=True):
            try:
                answers.append(fut.result(max(0.0, deadline - time.monotonic())))
            except FutureTimeout:
                answers.append(DecisionTimeout(s.signal_id, time.monotonic() - start))
            finally:
                self._forget(s.signal_id, fut)
        return answers

    @staticmethod
    def qty_for(signal: SignalRaised, answer: SizeDecided | DecisionTimeout) -> float:
        """The quantity to trade: the decision's ``qty``, or ``base_qty * 1.0`` on timeout."""
        if isinstance(answer, DecisionTimeout):
            return signal.base_qty * answer.multiplier
        return answer.qty

    def _expect(self, signal_id: str) -> Future[SizeDecided]:
        with self._lock:
            fut = self._pending.get(signal_id)
            if fut is None:
                fut = Future()
                seen = self._recent.get(signal_id)
                if seen is not None:  # already decided (a resend of the same signal_id)
                    fut.set_result(seen)
                self._pending[signal_id] = fut
            return fut

    def _forget(self, signal_id: str, fut: Future[SizeDecided]) -> None:
        with self._lock:
            if self._pending.get(signal_id) is fut:
                del self._pending[signal_id]

    def _deliver(self, decision: SizeDecided) -> None:
        with self._lock:
            self._recent[decision.signal_id] = decision
            self._recent.move_to_end(decision.signal_id)
            while len(self._recent) > RECENT_DECISIONS:
                self._recent.popitem(last=False)
            fut = self._pending.get(decision.signal_id)
        if fut is not None and not fut.done():
            fut.set_result(decision)
        if self._on_decision is not None:
            self._on_decision(decision)

    # -- consumer thread -------------------------------------------------------------------
    def _assign_at_end(self, consumer: Consumer, topic: str) -> None:
        meta = consumer.list_topics(topic, timeout=10.0).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise AdapterError(f"decisions topic {topic!r} does not exist (run `rlsizer up` or create the topics)")
        # the true ends (streams.end_offsets): tansu's ListOffsets is short, and a start there
        # re-delivered old decisions to ``on_decision``
        ends = end_offsets(
            self.settings.kafka_config(), [(topic, p) for p in meta.partitions], mode=self.settings.end_offsets
        )
        consumer.assign([TopicPartition(topic, p, end) for (_, p), end in sorted(ends.items())])

    def _run(self) -> None:
        topic = topic_name(self.settings, SizeDecided)
        consumer: Consumer | None = None
        try:
            consumer = make_consumer(
                self.settings, self._group_id, **{"fetch.wait.max.ms": 10, "enable.partition.eof": False}
            )
            self._assign_at_end(consumer, topic)
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            if consumer is not None:
                consumer.close()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                # poll() returns as soon as one record is there; a batch consume(n, t) would
                # wait out t unless the batch fills (tansu), adding t to every decision.
                first = consumer.poll(_POLL_S)
                if first is None:
                    continue
                for msg in [first, *consumer.consume(500, 0)]:
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.warning("decisions consumer: %s", err)
                        continue
                    self._handle(msg.value())
        finally:
            consumer.close()

    def _handle(self, value: Any) -> None:
        try:
            event = self._codec.decode(value)
        except DecodeError as exc:
            self.undecodable += 1
            log.warning("undecodable record on decisions topic (%s): %s", exc.kind, exc.reason)
            return
        if isinstance(event, SizeDecided):
            self._deliver(event)
