"""A table's changed values held decoded in memory and written once per batch.

The account of a symbol changes at every decision (its open risk), and a busy
symbol's account holds about a thousand open decisions (~37 KB). Written to its
changelogged Faust table at every signal, it was the largest record the worker
sent and most of its producer time. The signals agent decides a batch of
signals at a time (``Stream.take_events``); the account changes of the batch
stay here, decoded, and each symbol's account is written once when the batch
ends (``flush``), before the batch's offsets are acknowledged.

Every reader and writer of the table goes through ``get``/``put``: nobody reads
a table value older than one waiting here, so an outcome applied in another
agent while a batch is open updates the newest account (and flushes it at
once) instead of being overwritten by the batch's flush.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class WriteBehind(Generic[K, V]):
    """``get(key)``: the newest value; ``put(key, value, origin)``: changed; ``flush()``: write changes out.

    ``load(key)`` reads (and decodes) the stored value; ``write(key, value, origin)``
    stores one, where ``origin`` is whatever the writer needs to route it (the
    Faust event whose partition the changelog record goes to).
    """

    __slots__ = ("_load", "_write", "_dirty")

    def __init__(self, load: Callable[[K], V], write: Callable[[K, V, Any], None]) -> None:
        self._load = load
        self._write = write
        self._dirty: dict[K, tuple[V, Any]] = {}

    def __len__(self) -> int:
        """Values changed and not yet written."""
        return len(self._dirty)

    def get(self, key: K) -> V:
        pending = self._dirty.get(key)
        return pending[0] if pending is not None else self._load(key)

    def put(self, key: K, value: V, origin: Any) -> None:
        self._dirty[key] = (value, origin)

    def flush(self) -> int:
        """Write every changed value (in the order first changed); returns how many were written.

        A value whose write raises stays pending, with the ones after it, and the
        error propagates: nothing changed is dropped.
        """
        written = 0
        while self._dirty:
            key = next(iter(self._dirty))
            value, origin = self._dirty[key]
            self._write(key, value, origin)
            del self._dirty[key]
            written += 1
        return written
