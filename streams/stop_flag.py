"""A stop flag that a signal handler may set: ``StopFlag``.

``threading.Event.set()`` takes the event's lock. Python runs a signal handler on the
main thread between two bytecodes, so a handler that calls it can interrupt the main
thread *inside* that same lock (in ``Event.wait``'s bookkeeping, or in a first handler's
``set()`` when a second signal arrives) and then wait for a lock its own thread holds:
the process never stops. It happened to the reconciler child (the worker's SIGTERM,
then PDEATHSIG's). ``StopFlag.set()`` only assigns an attribute; ``wait`` sleeps in short
steps (a signal cuts a step short, and its handler has run when the sleep resumes).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

STEP_S: Final = 0.2  # longest delay between a signal and a waiter seeing it


class Stop(Protocol):
    """What loops read: ``StopFlag`` or, where no signal handler sets it, a ``threading.Event``."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class StopFlag:
    def __init__(self, step_s: float = STEP_S) -> None:
        self._set = False
        self._step_s = step_s

    def set(self) -> None:
        self._set = True  # no lock: safe in a signal handler

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Until set or ``timeout`` seconds (``None``: until set); whether it is set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._set:
            left = self._step_s if deadline is None else min(self._step_s, deadline - time.monotonic())
            if left <= 0:
                break
            time.sleep(left)
        return self._set


def stop_on_signals(
    flag: StopFlag,
    *,
    on_signal: Callable[[int], Any] | None = None,
    signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    """``signals`` set ``flag`` (main thread only); ``on_signal(signum)`` runs first (logging, say)."""

    def handler(signum: int, _frame: Any) -> None:
        if on_signal is not None:
            on_signal(signum)
        flag.set()

    for signum in signals:
        signal.signal(signum, handler)
