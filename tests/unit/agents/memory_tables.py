"""``agents.memory_tables.MemoryTables`` that can crash: what a worker loses when it dies between flushes."""

from __future__ import annotations

from agents.book import SymbolBook
from agents.memory_tables import MemoryTables as _Tables


class MemoryTables(_Tables):
    """Books written at ``flush()``; ``crash()`` loses the unwritten ones."""

    def __init__(self) -> None:
        super().__init__()
        self.written: dict[str, SymbolBook] = {}

    def flush(self) -> None:
        self.written = dict(self.books)

    def crash(self) -> None:
        """A worker died: the books as last flushed, ``decided`` as written (it is written at once)."""
        self.books = dict(self.written)
