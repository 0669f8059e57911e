"""Exact integer microsecond timestamps, the unit of all in-stream time comparisons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
DAY_US: Final = 86_400_000_000
_MICROSECOND: Final = timedelta(microseconds=1)


def to_micros(ts: datetime) -> int:
    """Microseconds since the epoch, computed in integers (no float rounding)."""
    return (ts - EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def utc64(value: datetime | np.datetime64) -> np.datetime64:
    """``value`` as a naive UTC ``datetime64[us]``, the unit of the trainer's time columns."""
    if isinstance(value, np.datetime64):
        micros: np.datetime64 = value.astype("datetime64[us]")
        return micros
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(value, "us")
