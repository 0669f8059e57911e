"""``agents.inputs.Tables`` in dicts: the worker's input path in one process, without Kafka or Faust.

The offline recorder (``rlsizer.reference.offline``) runs the path on it; tests do too.
"""

from __future__ import annotations

from agents.book import SymbolBook


class MemoryTables:
    """``agents.inputs.Tables`` in dicts (one process, nothing to recover)."""

    def __init__(self) -> None:
        self.books: dict[str, SymbolBook] = {}
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
        pass
