"""Waiting out a schema registry that cannot be asked (``schemas.codec.RegistryUnavailable``).

Its records are not bad input, so they are neither dead-lettered nor skipped: the
reader tries the same records again after 1 s, 2 s, 4 s, ... at most 30 s apart.
The worker's agents wait with ``asyncio.sleep(registry_wait(n))``; the threads (the
reconciler, the model watcher) call ``call_once_registry_answers``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final, TypeVar

from agents.health import backoff_delay
from schemas.codec import RegistryUnavailable

log = logging.getLogger(__name__)
FIRST_WAIT_S: Final = 1.0
MOST_WAIT_S: Final = 30.0
T = TypeVar("T")


def registry_wait(attempts: int) -> float:
    """Seconds to wait after ``attempts`` (>= 1) calls the registry did not answer."""
    return backoff_delay(attempts, base_seconds=FIRST_WAIT_S, cap_seconds=MOST_WAIT_S)


def call_once_registry_answers(call: Callable[[], T], stop: threading.Event, who: str) -> T | None:
    """``call()``, called again (waiting on ``stop``) while it raises ``RegistryUnavailable``; None once stopped."""
    attempts = 0
    while not stop.is_set():
        try:
            return call()
        except RegistryUnavailable as exc:
            attempts += 1
            wait = registry_wait(attempts)
            log.warning("%s: %s; trying again in %.0f s", who, exc, wait)
            stop.wait(wait)
    return None
