"""Process one record of a ``take_events`` batch as Faust processes a streamed one.

Faust routes a table write to the changelog partition of the *current event*
(``Table.partition_for_key``: the partition of the record being processed, so
per-symbol state moves with the symbol's partition). It sets that event for
``async for event in stream.events()``, but a batch from ``take_events`` arrives
in the agent with no current event (the batch is filled by a background drainer),
and a table write then fails ("Cannot modify table key from outside of stream
iteration"). ``processing(event)`` sets it for the body of the ``with`` (in this
task only: it is a context variable) and restores the previous one after.

Written against faust-streaming 0.15 (``faust.streams._current_event``, the
context variable behind ``faust.current_event()``); ``tests/unit/agents/
test_glue_faust_event.py`` fails if that changes.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust import streams as _faust_streams


@contextmanager
def processing(event: Any) -> Iterator[None]:
    token = _faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _faust_streams._current_event.reset(token)
