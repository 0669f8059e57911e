"""A small LRU of decoded table values, keyed by their bytes.

Faust tables hold state as bytes; decoding an ``AccountState`` of a thousand
open decisions or a 250-bar ``SymbolState`` on every signal costs more than the
decision itself. The state types are immutable values, so the object decoded
from (or encoded to) some bytes can be handed out again whenever the table
yields equal bytes: the result is the same as decoding afresh.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class DecodedCache(Generic[T]):
    """``get(raw)`` = ``decode(raw)``, remembered for the last ``maxsize`` distinct byte strings."""

    __slots__ = ("_decode", "_maxsize", "_items")

    def __init__(self, decode: Callable[[bytes], T], maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._decode = decode
        self._maxsize = maxsize
        self._items: OrderedDict[bytes, T] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, raw: bytes) -> T:
        """The value of ``raw``; decode errors propagate and nothing is remembered for them."""
        try:
            value = self._items[raw]
        except KeyError:
            value = self._decode(raw)
            self.put(raw, value)
            return value
        self._items.move_to_end(raw)
        return value

    def put(self, raw: bytes, value: T) -> None:
        """Remember that ``raw`` decodes to ``value`` (the caller just encoded ``value`` to ``raw``)."""
        self._items[raw] = value
        self._items.move_to_end(raw)
        while len(self._items) > self._maxsize:
            self._items.popitem(last=False)
