"""StopFlag: set from signal handlers, even one interrupting another, without ever blocking."""

from __future__ import annotations

import os
import signal
import threading
import time

from streams.stop_flag import StopFlag, stop_on_signals


def test_wait_times_out_unset_and_returns_at_once_when_set():
    flag = StopFlag(step_s=0.01)
    started = time.monotonic()
    assert flag.wait(0.05) is False and time.monotonic() - started >= 0.05
    flag.set()
    assert flag.is_set() and flag.wait(10) is True and flag.wait() is True


def test_a_signal_in_the_middle_of_another_handler_still_sets_it_and_the_wait_ends():
    """The reconciler child's hang: its handler was interrupted by a second SIGTERM. Here the first
    handler sends the second signal itself, from inside set(); with threading.Event the second
    set() waits on the lock the first holds, forever (checked below on a throwaway thread)."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    flag = StopFlag(step_s=0.01)
    calls: list[int] = []

    def first(signum: int) -> None:
        calls.append(signum)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # lands while this handler runs

    try:
        stop_on_signals(flag, on_signal=first)
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.wait(5) is True
        assert calls == [signal.SIGTERM, signal.SIGTERM]
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def test_threading_event_set_from_inside_its_own_lock_never_returns():
    """Why StopFlag exists: Event.set() re-entered on one thread (as a nested handler does) blocks."""
    event = threading.Event()
    done = threading.Event()

    def nested() -> None:
        with event._cond:  # what a first set() holds when the second handler runs
            event.set()  # the second handler's set(): waits for the lock this thread holds
        done.set()

    threading.Thread(target=nested, daemon=True).start()
    assert not done.wait(0.5)
