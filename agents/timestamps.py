"""Exact integer microsecond timestamps, the unit of all in-stream time comparisons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
DAY_US: Final = 86_400_000_000
_MICROSECOND: Final = timedelta(microseconds=1)


def to_micros(ts: datetime) -> int:
    """Microseconds since the epoch, computed in integers (no float rounding)."""
    return (ts - EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)
