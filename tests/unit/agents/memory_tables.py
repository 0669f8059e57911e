"""``agents.inputs.Tables`` in dicts, for running the worker's input path without Kafka or Faust."""

from __future__ import annotations

from agents.book import SymbolBook


class MemoryTables:
    """``agents.inputs.Tables`` in dicts; books written at once (``crash()`` loses the unwritten ones)."""

    def __init__(self) -> None:
        self.books: dict[str, SymbolBook] = {}
        self.written: dict[str, SymbolBook] = {}
        self.decided_: dict[str, bytes] = {}

    def book(self, symbol: str) -> SymbolBook | None:
        return self.books.get(symbol)

    def put_book(self, book: SymbolBook, partition: int) -> None:
        self.books[book.symbol] = book

    def decided(self, signal_id: str) -> bytes | None:
        return self.decided_.get(signal_id)

    def record(self, signal_id: str, value: bytes, partition: int) -> None:
        self.decided_[signal_id] = value

    def forget(self, signal_id: str, partition: int) -> None:
        self.decided_.pop(signal_id, None)

    def flush(self) -> None:
        self.written = dict(self.books)

    def crash(self) -> None:
        """A worker died: the books as last flushed, ``decided`` as written (it is written at once)."""
        self.books = dict(self.written)
