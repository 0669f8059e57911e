"""agents.glue.faust_event sets the event Faust's tables route changelog writes by."""

from __future__ import annotations

import asyncio

import faust

from agents.glue.faust_event import processing


class _Event:  # weak-referenceable stand-in for a faust Event
    def __init__(self, partition: int) -> None:
        self.partition = partition


def test_current_event_is_set_inside_and_restored_after():
    first, second = _Event(1), _Event(2)
    assert faust.current_event() is None
    with processing(first):
        assert faust.current_event() is first
        with processing(second):
            assert faust.current_event() is second
        assert faust.current_event() is first
    assert faust.current_event() is None


def test_a_task_already_running_does_not_see_it():
    seen: dict[str, object] = {}

    async def main() -> None:
        go, done = asyncio.Event(), asyncio.Event()

        async def other() -> None:  # started before the ``with``: its own context
            await go.wait()
            seen["other"] = faust.current_event()
            done.set()

        task = asyncio.create_task(other())
        await asyncio.sleep(0)
        with processing(_Event(3)):
            go.set()
            await done.wait()
            seen["mine"] = faust.current_event()
        await task

    asyncio.run(main())
    assert isinstance(seen["mine"], _Event) and seen["other"] is None
