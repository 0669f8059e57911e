"""The input path's ``Tables`` on the worker's Faust tables: ``books``, ``progress`` and ``decided``.

**Books are written behind, after the outputs they account for.** A symbol's book
changes at every input, and holds its bars, account and histories (tens of KB): the
worker keeps the changed books decoded in memory and writes each once per offset
commit. Faust flushes the producer before it commits; the flush runs, in order
(``RdKafkaProducer.flush``):

1. ``take()``: the changed books, as they are now;
2. every record sent so far is acknowledged -- the decisions, features and dead
   letters of the inputs those books have applied;
3. ``write(taken)``: the books go to their changelog, and are acknowledged with the
   rest before Faust commits.

So once a book that says "applied up to offset N" is in the changelog, every output
of the inputs up to N is too, and the committed input offset is never past a book.
Each input partition's ``progress`` (the last offset applied, ``agents.glue.contiguous``)
is written the same way, after the books.
After a crash the next worker recovers the books, re-reads from the committed offset,
and skips what the books have applied (``SymbolBook.applied``): nothing lost, nothing
applied twice, nothing sent again.

**``decided`` is written at once**, before the decision is sent (a repeat of the
signal must get the same decision even if the worker dies right after). After a
crash it can be ahead of the book: ``agents.inputs`` tells that case by the position
the entry records.

Decoded books are cached per symbol; the cache is dropped (all but unwritten books)
at the first record after a rebalance (``forget_clean``), since another worker may
have advanced a book of a partition this one held before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents.book import SymbolBook
from agents.glue.faust.changelog import ChangelogWriter


class BookStore:
    """``agents.inputs.Tables`` on Faust tables through ``ChangelogWriter``."""

    def __init__(
        self,
        writer: ChangelogWriter,
        books: Any,
        decided: Any,
        progress: Any,
        decode: Callable[[bytes], SymbolBook] = SymbolBook.from_bytes,
        owns: Callable[[int], bool] = lambda partition: True,
    ) -> None:
        """``owns(partition)``: the worker still holds input ``partition`` (a book taken before a rebalance
        is not written once its partition has moved: its new owner has the newer one)."""
        self._owns = owns
        self._writer = writer
        self._books = books
        self._decided = decided
        self._progress_table = progress
        self._progress: dict[int, int | None] = {}  # partition -> last offset applied (cached)
        self._progress_dirty: set[int] = set()
        self._decode = decode
        self._cache: dict[str, SymbolBook] = {}
        self._dirty: dict[str, int] = {}  # symbol -> partition of the input that changed it last
        self._taking: dict[str, int] = {}  # taken by a flush, not yet written

    # -- books -------------------------------------------------------------------------------
    def book(self, symbol: str) -> SymbolBook | None:
        book = self._cache.get(symbol)
        if book is None:
            raw = self._writer.get(self._books, symbol.encode())
            if raw is None:
                return None
            book = self._cache[symbol] = self._decode(raw)
        return book

    def put_book(self, book: SymbolBook, partition: int) -> None:
        self._cache[book.symbol] = book
        self._dirty[book.symbol] = partition

    def take(self) -> Callable[[], None]:
        """The changed books and progress as they are now; the callable returned writes them (the producer
        calls it once what they account for is acknowledged). Books taken by a flush that failed before
        writing them are taken again."""
        for symbol, partition in self._taking.items():
            self._dirty.setdefault(symbol, partition)
        self._taking, self._dirty = self._dirty, {}
        taken = [(self._cache[symbol], partition) for symbol, partition in self._taking.items()]
        progress = [(p, self._progress[p]) for p in self._progress_dirty]
        self._progress_dirty = set()

        def write() -> None:
            owns = self._owns
            for book, partition in taken:
                if owns(partition):
                    self._writer.set(self._books, book.symbol.encode(), book.to_bytes(), partition)
            for partition, offset in progress:  # after the books: never ahead of one
                if owns(partition):
                    self._writer.set(self._progress_table, _progress_key(partition), str(offset).encode(), partition)
            self._taking = {}

        return write

    # -- progress ----------------------------------------------------------------------------
    def progress(self, partition: int) -> int | None:
        """The last offset of input ``partition`` applied (None: none ever)."""
        if partition not in self._progress:
            raw = self._writer.get(self._progress_table, _progress_key(partition))
            self._progress[partition] = int(raw) if raw is not None else None
        return self._progress[partition]

    def put_progress(self, partition: int, offset: int) -> None:
        self._progress[partition] = offset
        self._progress_dirty.add(partition)

    def unwritten(self) -> int:
        return len(self._dirty) + len(self._taking)

    def forget_clean(self, assigned: set[int]) -> None:
        """After a rebalance: drop the cached books and progress that are written (read them again from the
        table), and any unwritten ones of a partition no longer ``assigned`` (its new owner has newer ones)."""
        for pending in (self._dirty, self._taking):
            for symbol in [s for s, partition in pending.items() if partition not in assigned]:
                del pending[symbol]
        keep = self._dirty.keys() | self._taking.keys()
        self._cache = {symbol: book for symbol, book in self._cache.items() if symbol in keep}
        self._progress_dirty &= assigned
        self._progress = {p: o for p, o in self._progress.items() if p in self._progress_dirty}

    # -- decided -----------------------------------------------------------------------------
    def decided(self, signal_id: str) -> bytes | None:
        stored: bytes | None = self._writer.get(self._decided, signal_id.encode())
        return stored

    def record(self, signal_id: str, value: bytes, partition: int) -> None:
        self._writer.set(self._decided, signal_id.encode(), value, partition)

    def forget(self, signal_id: str, partition: int) -> None:
        key = signal_id.encode()
        recorded = self._writer.partition(self._decided, key)
        self._writer.delete(self._decided, key, partition if recorded is None else recorded)


def _progress_key(partition: int) -> bytes:
    return b"%d" % partition
