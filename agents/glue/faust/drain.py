"""Faust's consumer drain loop, with each record handed to the agents without tasks of its own.

Faust's ``Consumer._drain_messages`` hands every fetched record to the agents
with ``await self.wait_first(callback(message), self.suspend_flow.wait())``:
four tasks per record (the delivery, the flow-suspension wait, the consumer's
stopped and crashed waits) and an ``asyncio.wait``, so records reach the agents
one per event-loop turn, each turn passing through the rest of the loop's work.
The delivery itself (``Conductor.on_message``: the raw record made a Faust event
and put on the channel queues) almost never suspends. ``drain_messages`` is
Faust's loop with that one call changed: the delivery is started in place
(``coro.send(None)``); when it finishes at once, nothing else is made; when it
suspends (a full channel queue, the producer's buffer) the rest of it runs under
``wait_first`` as before, so a flow suspension or a stop still interrupts it.
While the flow is suspended (a rebalance) or the consumer is stopping or has
crashed, Faust's own call is made. Offsets, gaps, commits and the yield every 100
records are Faust's, line for line, with one exception: on the input topics a jump in
offsets is not added as a gap (which Faust counts as acknowledged and commits past):
there it means records Faust dropped, which the agent reads again
(``agents.glue.contiguous``).

Measured with ``bench/bench_worker.py`` (3,000 signals; both apps take this
loop, it is part of the shared transport), 13 runs alternated with Faust's loop:
the worker 2,834-5,796 signals/s (median 4,232) against 2,089-3,813 (median 3,082),
faster in 12 of the 13 pairs, at 0.17-0.37 ms of CPU per signal against 0.26-0.50;
the pass-through 7,782-13,219 records/s against 4,455-8,708; the worker's p99 at
1,000 signals/s 77-252 ms (median 123) against 75-207 ms (median 124).

The loop is a copy, so it replaces Faust's only while Faust's is the one it was
copied from (``FAUST_DRAIN_SHA256``, the digest of faust-streaming 0.15.3's
source of it); otherwise Faust's stays, a warning says so, and
``tests/unit/agents/test_glue_drain.py`` fails until the copy is checked against
the new one.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Final

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.consumer import Consumer as FaustConsumer

log = logging.getLogger(__name__)

FAUST_DRAIN_SHA256: Final = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"


def faust_drain_digest() -> str | None:
    """SHA-256 of the installed Faust's ``Consumer._drain_messages`` source (None: no source installed)."""
    try:
        source = inspect.getsource(FaustConsumer._drain_messages)
    except (OSError, TypeError):  # e.g. an image that ships bytecode only
        return None
    return hashlib.sha256(source.encode()).hexdigest()


def drain_for_this_faust() -> Callable[..., Any]:
    """``drain_messages`` when the installed Faust's loop is the one it copies, else Faust's own."""
    if faust_drain_digest() == FAUST_DRAIN_SHA256:
        return drain_messages
    log.warning(
        "Faust's Consumer._drain_messages is not the one agents.glue.faust.drain copies (or its source "
        "is not installed): keeping Faust's (four tasks per record; the worker is slower)"
    )
    return FaustConsumer._drain_messages


class _Yield:
    """Awaiting it passes ``obj`` (what a coroutine driven by hand yielded) up to the running task."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __await__(self) -> Generator[Any, None, None]:
        yield self.obj


async def resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    """Run ``coro``, started by hand and suspended on ``yielded``, to its end inside the running task.

    A cancellation (or any exception) thrown in while it waits goes into ``coro``,
    as if the task had been running it from the start.
    """
    while True:
        try:
            await _Yield(yielded)
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value


async def deliver(consumer: Any, coro: Coroutine[Any, Any, Any]) -> None:
    """Await ``coro`` (a record's delivery) as Faust's ``wait_first`` would, without tasks when it does not suspend."""
    if consumer.suspend_flow.is_set() or consumer._stopped.is_set() or consumer._crashed.is_set():
        await consumer.wait_first(coro, consumer.suspend_flow.wait())
        return
    try:
        yielded = coro.send(None)
    except StopIteration:
        return
    await consumer.wait_first(resume(coro, yielded), consumer.suspend_flow.wait())


async def drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - Faust's loop; run by the worker tests
    """Faust 0.15.3's ``Consumer._drain_messages`` with each delivery made by ``deliver``, and no gap added
    on the input topics (``self.contiguous_topics``; see ``agents.glue.contiguous``)."""
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep
    contiguous: frozenset[str] = getattr(self, "contiguous_topics", frozenset())  # rlsizer: see agents.glue.contiguous

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = getmany(timeout=1.0)
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        # rlsizer: a jump on an input topic is records Faust dropped, not a gap to commit past
                        if gap > 1 and r_offset and tp.topic not in contiguous:
                            acks_enabled = acks_enabled_for(message.topic)
                            if acks_enabled:
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        await deliver(self, callback(message))
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                unset_flag(flag_consumer_fetching)

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)
