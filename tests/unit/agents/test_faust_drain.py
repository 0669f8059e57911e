"""Records handed to the agents without tasks of their own (agents.glue.faust.drain)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mode import Service

from agents.glue.faust import drain
from agents.glue.faust.transport import TansuConsumer


def test_the_installed_faust_has_the_loop_that_was_copied():
    assert drain.faust_drain_digest() == drain.FAUST_DRAIN_SHA256, (
        "Faust's Consumer._drain_messages changed: compare it with agents.glue.faust.drain.drain_messages, "
        "carry its changes over, then update FAUST_DRAIN_SHA256"
    )
    assert TansuConsumer._drain_messages is drain.drain_messages


def test_another_faust_keeps_its_own_loop(monkeypatch, caplog):
    monkeypatch.setattr(drain, "FAUST_DRAIN_SHA256", "0" * 64)
    from faust.transport.consumer import Consumer

    assert drain.drain_for_this_faust() is Consumer._drain_messages
    assert "keeping Faust's" in caplog.text


def test_without_faust_s_source_its_own_loop_is_kept(monkeypatch):
    def no_source(obj):
        raise OSError("could not get source code")

    monkeypatch.setattr(drain.inspect, "getsource", no_source)
    from faust.transport.consumer import Consumer

    assert drain.faust_drain_digest() is None
    assert drain.drain_for_this_faust() is Consumer._drain_messages


class _Consumer(Service):
    """What ``deliver`` uses of a Faust consumer: the flow flag and ``wait_first`` (counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()
        self.waited = 0

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
        self.waited += 1
        return await super().wait_first(*coros, timeout=timeout)


async def _put(done: list[str], gate: asyncio.Future[None] | None = None) -> None:
    """A delivery: suspends on ``gate`` when given (a full queue), then records itself."""
    try:
        if gate is not None:
            await gate
    except asyncio.CancelledError:
        done.append("cancelled")
        raise
    done.append("delivered")


def test_a_delivery_that_does_not_suspend_runs_in_place():
    async def main() -> tuple[list[str], int]:
        consumer, done = _Consumer(), []
        await drain.deliver(consumer, _put(done))
        return done, consumer.waited

    assert asyncio.run(main()) == (["delivered"], 0)


def test_a_delivery_that_suspends_finishes_under_wait_first():
    async def main() -> tuple[list[str], int]:
        consumer, done = _Consumer(), []
        gate = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, gate.set_result, None)
        await drain.deliver(consumer, _put(done, gate))
        return done, consumer.waited

    assert asyncio.run(main()) == (["delivered"], 1)


def test_suspending_the_flow_interrupts_a_blocked_delivery():
    async def main() -> list[str]:
        consumer, done = _Consumer(), []
        gate = asyncio.get_running_loop().create_future()  # never resolved: a queue that stays full
        asyncio.get_running_loop().call_later(0.01, consumer.suspend_flow.set)
        await asyncio.wait_for(drain.deliver(consumer, _put(done, gate)), timeout=5)
        await asyncio.sleep(0)  # the cancelled delivery runs its handler
        return done

    assert asyncio.run(main()) == ["cancelled"]


@pytest.mark.parametrize("flag", ["suspend_flow", "_stopped", "_crashed"])
def test_while_suspended_or_stopping_faust_s_own_call_is_made(flag):
    async def main() -> int:
        consumer, done = _Consumer(), []
        if flag == "suspend_flow":
            consumer.suspend_flow.set()
            await drain.deliver(consumer, _put(done))  # wait_first returns with the flow suspended
        else:
            getattr(consumer, flag).set()
            await drain.deliver(consumer, _put(done))
        return consumer.waited

    assert asyncio.run(main()) == 1


def test_resume_returns_the_value_and_passes_exceptions_through():
    async def value(gate: asyncio.Future[int]) -> int:
        return await gate + 1

    async def failing(gate: asyncio.Future[None]) -> None:
        await gate
        raise ValueError("bad record")

    async def main() -> tuple[int, str]:
        loop = asyncio.get_running_loop()
        gate = loop.create_future()
        coro = value(gate)
        yielded = coro.send(None)
        loop.call_soon(gate.set_result, 41)
        got = await drain.resume(coro, yielded)
        gate2 = loop.create_future()
        coro2 = failing(gate2)
        yielded2 = coro2.send(None)
        loop.call_soon(gate2.set_result, None)
        with pytest.raises(ValueError, match="bad record"):
            await drain.resume(coro2, yielded2)
        return got, "raised"

    assert asyncio.run(main()) == (42, "raised")
