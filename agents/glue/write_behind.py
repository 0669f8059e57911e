"""A table's changed values held decoded in memory and written out on demand (``flush``).

The account of a symbol changes at every decision (its open risk), and a busy
symbol's account holds about a thousand open decisions (~37 KB). Written to its
changelogged Faust table at every signal, it was the largest record the worker
sent and most of its producer time. The worker keeps the changed accounts here,
decoded, and writes each once when the producer is flushed, which Faust does
before every offset commit: a signal's offset is never committed before the
account it changed is on its way (``RdKafkaProducer.before_flush``).

Every reader and writer of the table goes through ``get``/``put``: nobody reads
a table value older than one waiting here, so an outcome applied in another
agent updates the newest account, never one without the latest decisions.
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
    worker: the partition of the record that changed it, for the changelog record).
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
