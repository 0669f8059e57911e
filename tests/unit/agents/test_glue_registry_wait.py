"""Waiting out a registry that cannot be asked: the same call again, 1 s, 2 s, 4 s ... 30 s apart, until stopped."""

from __future__ import annotations

import threading

from agents.glue.registry_wait import MOST_WAIT_S, call_once_registry_answers, registry_wait
from schemas.codec import RegistryUnavailable


class _Stop(threading.Event):
    def __init__(self, after: int | None = None) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.after = after

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(float(timeout or 0))
        if self.after is not None and len(self.waits) >= self.after:
            self.set()
        return self.is_set()


def test_waits_double_up_to_the_cap() -> None:
    assert [registry_wait(n) for n in (1, 2, 3, 4, 5, 6)] == [1.0, 2.0, 4.0, 8.0, 16.0, MOST_WAIT_S]


def test_the_same_call_is_made_again_until_the_registry_answers() -> None:
    calls = []

    def call() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise RegistryUnavailable("connection refused")
        return "done"

    stop = _Stop()
    assert call_once_registry_answers(call, stop, "test") == "done"
    assert len(calls) == 4 and stop.waits == [1.0, 2.0, 4.0]


def test_a_stop_ends_the_waiting_without_a_result() -> None:
    def never() -> str:
        raise RegistryUnavailable("401")

    stop = _Stop(after=2)
    assert call_once_registry_answers(never, stop, "test") is None and stop.waits == [1.0, 2.0]
