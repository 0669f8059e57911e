"""Faust's producer with its sends going through librdkafka (confluent-kafka) instead of aiokafka.

Every decision costs the worker three records out (``FeaturesComputed``,
``SizeDecided`` and the ``decided`` changelog record; four when this was
written, see ``agents.glue.decided_record``). With Faust's aiokafka producer each
one is batched, framed and written by Python code on the event loop: about a
third of a busy worker's time. librdkafka does that work in its own C threads,
off the event loop and outside the GIL (on the second core), and a
``produce()`` call costs a few microseconds.

What stays as Faust expects:

- ``send`` returns a future resolved with a ``RecordMetadata`` (topic, partition,
  offset) when the broker acknowledges the record, or failed with
  ``ProducerSendError``; delivery reports are dispatched on the event loop by a
  poller task (``poll(0)``; never from librdkafka's threads);
- ``flush`` waits until librdkafka has no record left unacknowledged: Faust
  flushes the producer before it commits offsets, so a record is delivered before
  the offset of the input that caused it is committed (at least once);
- records without a partition are placed by ``murmur2_random``, the partitioner
  of Java clients and aiokafka (a key lands where every other producer puts it);
- the aiokafka producer still runs for what Faust uses it for besides sending
  (topic creation, ``key_partition``, transactions; transactional sends go to it).

``produce_now`` hands a record to librdkafka without Faust's per-record future
and callbacks (the worker's ``FeaturesComputed``/``SizeDecided``: nothing waits
on them one by one). They are flushed with the rest before every commit; one
that fails makes the next ``flush`` raise, so Faust does not commit past it (the
worker stops, and its successor decides those signals again from the last
commit: the same decisions, from the ``decided`` table). They go through a second
librdkafka producer configured with ``delivery.report.only.error``: a record
delivered costs no Python call (a worker makes three per signal), only a failed
one does. Each topic is written by one of the two producers only (a table's
changelog either through Faust or through ``produce_now``), so order within a
partition is the order of the calls.

Configured from ``Settings`` through ``streams.producer.producer_config``
(security settings included); installed by ``agents.glue.faust.transport.install_transport``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from aiokafka.structs import RecordMetadata, TopicPartition
from confluent_kafka import KafkaException
from confluent_kafka import Producer as RdProducer
from faust.exceptions import ProducerSendError
from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.002
"""How often delivery reports are dispatched while records are in flight (idle: 10x less often)."""
FLUSH_TIMEOUT_S = 60.0


class TansuProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer without the idempotent producer outside transactions (tansu refuses it)."""

    def _settings_extra(self) -> Any:
        if self.app.in_transaction:
            return super()._settings_extra()
        return {"enable_idempotence": False}


class RdKafkaProducer(TansuProducer):
    """``TansuProducer`` whose non-transactional sends go through a ``confluent_kafka.Producer``."""

    rdkafka_config: ClassVar[Mapping[str, Any]] = {}  # set on a subclass by ``with_config``

    _rd: RdProducer | None = None  # Faust's sends: a delivery report per record resolves its future
    _rd_now: RdProducer | None = None  # produce_now: delivery reports of failures only
    _poller: asyncio.Task[None] | None = None
    _failed: list[str] | None = None
    _before_flush: tuple[Callable[[], Callable[[], object]], ...] = ()  # hooks: take now, return the write

    @classmethod
    def with_config(cls, config: Mapping[str, Any]) -> type[RdKafkaProducer]:
        """This class bound to a librdkafka configuration (a Faust transport builds producers from a class)."""
        return type(cls.__name__, (cls,), {"rdkafka_config": dict(config)})

    async def on_start(self) -> None:
        await super().on_start()
        self._rd = RdProducer(dict(self.rdkafka_config))
        self._rd_now = RdProducer({**self.rdkafka_config, "delivery.report.only.error": True})
        self._failed = []
        self._poller = asyncio.ensure_future(self._poll_forever())

    async def on_stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        producers = (self._rd, self._rd_now)
        if self._rd is not None and self._before_flush:  # what they hold back goes out with the rest, after it
            writes = []
            for take in self._before_flush:
                try:
                    writes.append(take())
                except Exception:
                    log.exception("before-flush hook failed at stop")
            left = sum(rd.flush(10) for rd in producers if rd is not None)
            if left or self._failed:
                log.error("producer stopping with %d records undelivered: what was held back is not written", left)
            else:
                for write in writes:
                    try:
                        write()
                    except Exception:
                        log.exception("before-flush write failed at stop")
        self._rd, self._rd_now = None, None
        for rd in producers:
            left = rd.flush(10) if rd is not None else 0  # delivery reports run here, on the loop's thread
            if left:
                log.error("producer stopped with %d records undelivered", left)
        await super().on_stop()

    def _poll(self) -> int | None:
        """Serve both producers' delivery reports; the records still unacknowledged (None: stopped)."""
        rd, now = self._rd, self._rd_now
        if rd is None or now is None:
            return None
        rd.poll(0)
        now.poll(0)
        return len(rd) + len(now)

    async def _poll_forever(self) -> None:
        while (left := self._poll()) is not None:
            await asyncio.sleep(POLL_INTERVAL_S if left else 10 * POLL_INTERVAL_S)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        rd = self._rd
        if transactional_id or rd is None:
            return await super().send(
                topic, key, value, partition, timestamp, headers, transactional_id=transactional_id
            )
        if isinstance(headers, Mapping):
            headers = list(headers.items())
        self._send_on_produce_message(key=key, value=value, partition=partition, timestamp=timestamp, headers=headers)
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()

        def delivered(err: Any, msg: Any) -> None:
            if future.done():
                return
            if err is not None:
                future.set_exception(ProducerSendError(f"{topic}[{partition}]: {err}"))
                return
            tp = TopicPartition(msg.topic(), msg.partition())
            future.set_result(RecordMetadata(tp.topic, tp.partition, tp, msg.offset(), msg.timestamp()[1], 0, None))

        extra: dict[str, Any] = {}
        if partition is not None:
            extra["partition"] = partition
        if timestamp:
            extra["timestamp"] = int(timestamp * 1000)
        if headers:
            extra["headers"] = headers
        while True:
            try:
                rd.produce(topic, value, key, on_delivery=delivered, **extra)
                return future
            except BufferError:  # librdkafka's queue is full: let it drain (back-pressure on the agent)
                rd.poll(0)
                await asyncio.sleep(POLL_INTERVAL_S)
            except KafkaException as exc:
                raise ProducerSendError(f"cannot send to {topic}: {exc}") from exc

    def produce_now(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        """Hand one record to librdkafka (no future; a failure surfaces at the next ``flush``)."""
        rd = self._rd_now
        if rd is None:
            raise ProducerSendError(f"producer not started: cannot send to {topic}")
        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        while True:
            try:
                rd.produce(topic, value, key, on_delivery=self._delivered_now, **extra)
                return
            except BufferError:  # queue full: wait for librdkafka to drain some (back-pressure)
                rd.poll(POLL_INTERVAL_S)
            except KafkaException as exc:
                raise ProducerSendError(f"cannot send to {topic}: {exc}") from exc

    def _delivered_now(self, err: Any, msg: Any) -> None:
        if err is not None and self._failed is not None:
            self._failed.append(f"{msg.topic()}[{msg.partition()}]: {err}")

    def before_flush(self, take: Callable[[], Callable[[], object]]) -> None:
        """At every ``flush``: ``take()`` first, then -- once every record sent until then is acknowledged --
        the callable it returned, whose records are acknowledged before ``flush`` returns.

        ``agents.glue.book_store``: the books taken account for outputs that must be
        in the log before the books are (so a book never claims an input whose
        decision was lost).
        """
        self._before_flush = (*self._before_flush, take)

    async def flush(self) -> None:
        """The ``before_flush`` takes, every record so far acknowledged, their writes, then all acknowledged.

        Raises ``ProducerSendError`` when a record failed since the last flush (Faust
        flushes before committing: the commit does not happen, and nothing taken is written).
        """
        if self._rd is not None and self._before_flush:  # stopped: on_stop ran the hooks and flushed
            writes = [take() for take in self._before_flush]
            if not await self._acknowledged():
                return
            for write in writes:
                write()
        await super().flush()
        await self._acknowledged()

    async def _acknowledged(self) -> bool:
        """Wait until every record handed to librdkafka is acknowledged (False: the producer stopped meanwhile).

        Raises ``ProducerSendError`` for records that failed, or after ``FLUSH_TIMEOUT_S``.
        """
        left = self._poll()
        if left is None:  # stopped: on_stop flushed both
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FLUSH_TIMEOUT_S
        while left:
            if loop.time() > deadline:
                raise ProducerSendError(f"{left} records not acknowledged after {FLUSH_TIMEOUT_S:.0f} s")
            await asyncio.sleep(POLL_INTERVAL_S)
            left = self._poll()
            if left is None:
                return False
        failed, self._failed = self._failed or [], []
        if failed:
            raise ProducerSendError(f"{len(failed)} records not delivered, e.g. {failed[0]}")
        return True
