"""Which garbage-collector generations run while a block runs (for the replay's collection tests)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collected_generations() -> Iterator[list[int]]:
    """The list of generations collected inside the block, one entry per collection, in order."""
    seen: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(record)
    try:
        yield seen
    finally:
        gc.callbacks.remove(record)
