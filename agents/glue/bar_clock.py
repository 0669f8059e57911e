"""When a signal must wait for its bar: the next bar close each symbol expects.

Bars and signals arrive on different topics and are read by different agents, so a
signal published right after the bar that closes at its timestamp can be picked up
first. A signal waits (bounded) only when a bar closing at or before it is *due*:
``signal.ts >= last bar close + interval``. An intra-bar signal (before the next
close) never waits, and once a wait for a symbol times out the symbol is marked
lagging until its next bar arrives, so a bot that stopped sending bars costs one
timeout, not one per signal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_INTERVAL = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_US = {"s": 1_000_000, "sec": 1_000_000, "m": 60_000_000, "min": 60_000_000, "h": 3_600_000_000,
            "d": 86_400_000_000, "w": 604_800_000_000}


def interval_us(interval: str) -> int | None:
    """``"1h"`` -> microseconds; ``None`` for an interval it does not know (then signals never wait)."""
    match = _INTERVAL.match(interval)
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_US[match.group(2).lower()]


@dataclass
class BarClock:
    """Per symbol: the last bar close seen (µs) and its interval; which symbols are lagging."""

    last: dict[bytes, tuple[int, int | None]] = field(default_factory=dict)
    lagging: dict[bytes, int] = field(default_factory=dict)

    def saw_bar(self, symbol: bytes, ts_us: int, interval: str) -> None:
        self.last[symbol] = (ts_us, interval_us(interval))
        self.lagging.pop(symbol, None)

    def bar_due(self, symbol: bytes, signal_ts_us: int) -> bool:
        """True when a bar closing at or before the signal is expected but not applied yet."""
        known = self.last.get(symbol)
        if known is None:
            return False
        last_us, step_us = known
        if step_us is None or self.lagging.get(symbol) == last_us:
            return False
        return signal_ts_us >= last_us + step_us

    def timed_out(self, symbol: bytes) -> None:
        known = self.last.get(symbol)
        if known is not None:
            self.lagging[symbol] = known[0]
