"""Which decoded rows surely pass the event's validation, checked a column at a time.

The dataclasses in ``schemas.events`` are the one authority on validity and on the
reason a value is refused. This module is a conservative vectorised pre-check for
the batch decoder: ``surely_valid(event_type, columns)`` is True only for rows the
dataclass would accept; every other row (False) goes through the dataclass, which
accepts it or names its reason. So a check here may be stricter than the dataclass,
never looser; ``tests/unit/schemas/test_batch_rules.py`` proves agreement on
generated values and pins the source of every ``__post_init__`` so that a changed
rule there fails the tests until this mirror is updated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.events import (
    HEALTH_STATUSES,
    LEGS,
    MULTIPLIER_MAX,
    MULTIPLIER_MIN,
    POLICIES,
    SIDES,
    BarClosed,
    Event,
    EventRejected,
    FeaturesComputed,
    HealthChecked,
    ModelPublished,
    OrderFilled,
    SignalRaised,
    SizeDecided,
    TradeClosed,
    earliest_event_time,
)

Columns = Mapping[str, pa.Array]
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _num(columns: Columns, name: str) -> np.ndarray:
    """Values as float64, nulls as NaN."""
    return np.asarray(columns[name].to_numpy(zero_copy_only=False), dtype=np.float64)


def _null(columns: Columns, name: str) -> np.ndarray:
    return np.asarray(columns[name].is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _non_empty(columns: Columns, *names: str) -> np.ndarray:
    """Strings holding a printable ASCII character (so ``str.strip()`` leaves something); others go to the dataclass."""
    ok = np.ones(len(columns[names[0]]), bool)
    for name in names:
        ok &= _printable(columns[name])
    return ok


def _printable(strings: pa.Array) -> np.ndarray:
    """bool[n]: the string holds a character in ``!``..``~`` (null: False).

    Most strings (ids, symbols) start with one: their first byte decides; the regex
    reads only the others.
    """
    ok = _first_byte_printable(strings)
    if ok is None:
        return _any_printable(strings)
    rest = np.flatnonzero(~ok)
    if len(rest):
        ok[rest] = _any_printable(strings.take(pa.array(rest)))
    return ok


def _any_printable(strings: pa.Array) -> np.ndarray:
    """bool[n]: the string holds a character in ``!``..``~`` anywhere (null: False)."""
    return pc.fill_null(pc.match_substring_regex(strings, "[!-~]"), False).to_numpy(zero_copy_only=False)


def _first_byte_printable(strings: pa.Array) -> np.ndarray | None:
    """bool[n]: the string's first byte is in ``!``..``~`` (empty or null: False); None if ``strings`` is not a string array."""
    if not isinstance(strings, (pa.StringArray, pa.LargeStringArray)):
        return None
    n = len(strings)
    _, offsets_buffer, data_buffer = strings.buffers()
    width = np.int32 if isinstance(strings, pa.StringArray) else np.int64
    offsets = np.frombuffer(offsets_buffer, width, n + 1, strings.offset * np.dtype(width).itemsize)
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    starts = offsets[:-1]
    filled = offsets[1:] > starts
    first = data[np.where(filled, starts, 0)] if len(data) else np.zeros(n, np.uint8)
    ok = filled & (first >= 0x21) & (first <= 0x7E)
    if strings.null_count:
        ok &= strings.is_valid().to_numpy(zero_copy_only=False)
    return ok


def _positive(columns: Columns, *names: str) -> np.ndarray:
    ok = np.ones(len(columns[names[0]]), bool)
    for name in names:
        v = _num(columns, name)
        ok &= np.isfinite(v) & (v > 0)
    return ok


def _non_negative(columns: Columns, *names: str) -> np.ndarray:
    ok = np.ones(len(columns[names[0]]), bool)
    for name in names:
        v = _num(columns, name)
        ok &= np.isfinite(v) & (v >= 0)
    return ok


def _finite(columns: Columns, *names: str) -> np.ndarray:
    ok = np.ones(len(columns[names[0]]), bool)
    for name in names:
        ok &= np.isfinite(_num(columns, name))
    return ok


def _unit_interval(columns: Columns, name: str) -> np.ndarray:
    v = _num(columns, name)
    return np.isfinite(v) & (v >= 0) & (v <= 1)


def _optional(columns: Columns, name: str, check: Callable[[Columns, str], np.ndarray]) -> np.ndarray:
    return _null(columns, name) | check(columns, name)


def _one_of(columns: Columns, name: str, allowed: tuple[str, ...]) -> np.ndarray:
    return pc.fill_null(pc.is_in(columns[name], pa.array(allowed, pa.string())), False).to_numpy(zero_copy_only=False)


def _map_values_finite(columns: Columns, name: str) -> np.ndarray:
    array = columns[name]
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    offsets = array.offsets.to_numpy()
    bad = ~np.isfinite(np.asarray(array.items.to_numpy(zero_copy_only=False), dtype=np.float64))
    bad_per_row = np.add.reduceat(np.append(bad, False).astype(np.int64), offsets[:-1]) if len(offsets) > 1 else np.zeros(0, np.int64)
    bad_per_row = np.where(np.diff(offsets) > 0, bad_per_row, 0)
    return (bad_per_row == 0) & ~_null(columns, name)


def _plausible_times(columns: Columns, *names: str) -> np.ndarray:
    """Timestamps at or after the earliest plausible event time (``schemas.events.earliest_event_time``)."""
    earliest = (earliest_event_time() - _EPOCH) // timedelta(microseconds=1)
    ok = np.ones(len(columns[names[0]]), bool)
    for name in names:
        ok &= columns[name].cast(pa.int64()).to_numpy(zero_copy_only=False) >= earliest
    return ok


def _event(columns: Columns) -> np.ndarray:
    # timestamps from the decoder are always timezone-aware (UTC)
    return _non_empty(columns, "event_id") & _plausible_times(columns, "ts_event", "ts_init")


def _order_sides(c: Columns) -> np.ndarray:
    """A BUY's stop below and target above its price; a SELL's the other way round (absent: fine)."""
    price, stop, target = _num(c, "price"), _num(c, "stop_price"), _num(c, "target_price")
    buy, sell = _one_of(c, "side", ("BUY",)), _one_of(c, "side", ("SELL",))
    stop_ok = _null(c, "stop_price") | (buy & (stop < price)) | (sell & (stop > price))
    target_ok = _null(c, "target_price") | (buy & (target > price)) | (sell & (target < price))
    return stop_ok & target_ok


def _bar(c: Columns) -> np.ndarray:
    o, h, low, close = (_num(c, n) for n in ("open", "high", "low", "close"))
    bid, ask = _num(c, "bid"), _num(c, "ask")
    both = ~_null(c, "bid") & ~_null(c, "ask")
    return (
        _event(c)
        & _non_empty(c, "symbol", "interval")
        & _positive(c, "open", "high", "low", "close")
        & _non_negative(c, "volume")
        & (h >= np.maximum(np.maximum(o, close), low))
        & (low <= np.minimum(o, close))
        & _optional(c, "bid", _positive)
        & _optional(c, "ask", _positive)
        & _optional(c, "bid_size", _non_negative)
        & _optional(c, "ask_size", _non_negative)
        & (~both | (bid <= ask))
    )


def _signal(c: Columns) -> np.ndarray:
    return (
        _event(c)
        & _non_empty(c, "signal_id", "strategy_id", "symbol")
        & _one_of(c, "side", SIDES)
        & _positive(c, "price", "base_qty")
        & _non_negative(c, "atr")
        & _finite(c, "score")
        & _unit_interval(c, "q_score")
        & _optional(c, "stop_price", _positive)
        & _optional(c, "target_price", _positive)
        & _order_sides(c)
        & ~_null(c, "attrs")
    )


def _features(c: Columns) -> np.ndarray:
    return _event(c) & _non_empty(c, "signal_id") & _map_values_finite(c, "features")


def _decision(c: Columns) -> np.ndarray:
    m = _num(c, "multiplier")
    latency = np.asarray(c["latency_us"].to_numpy(zero_copy_only=False))
    return (
        _event(c)
        & _non_empty(c, "signal_id")
        & np.isfinite(m)
        & (m >= MULTIPLIER_MIN)
        & (m <= MULTIPLIER_MAX)
        & _non_negative(c, "qty")
        & _one_of(c, "policy", POLICIES)
        & (latency >= 0)
    )


def _fill(c: Columns) -> np.ndarray:
    return (
        _event(c)
        & _non_empty(c, "signal_id", "order_id")
        & _one_of(c, "side", SIDES)
        & _positive(c, "qty", "price")
        & _non_negative(c, "fee")
        & _one_of(c, "leg", LEGS)
    )


def _trade(c: Columns) -> np.ndarray:
    entry = c["entry_ts"].cast(pa.int64()).to_numpy(zero_copy_only=False)
    exit_ = c["exit_ts"].cast(pa.int64()).to_numpy(zero_copy_only=False)
    return (
        _event(c)
        & _one_of(c, "side", SIDES)
        & _positive(c, "qty", "entry_price", "exit_price")
        & _plausible_times(c, "entry_ts", "exit_ts")
        & (exit_ >= entry)
        & _finite(c, "pnl", "r_multiple", "mae_r", "mfe_r")
        & _non_negative(c, "fees")
    )


def _model(c: Columns) -> np.ndarray:
    return _event(c) & _non_empty(c, "model_name", "version") & ~_null(c, "metrics")


def _health(c: Columns) -> np.ndarray:
    return _event(c) & _one_of(c, "status", HEALTH_STATUSES)


RULES: Final[dict[type[Event], Callable[[Columns], np.ndarray]]] = {
    BarClosed: _bar,
    SignalRaised: _signal,
    FeaturesComputed: _features,
    SizeDecided: _decision,
    OrderFilled: _fill,
    TradeClosed: _trade,
    ModelPublished: _model,
    HealthChecked: _health,
    EventRejected: _event,
}


def surely_valid(event_type: type[Event], columns: Columns) -> np.ndarray:
    """bool[n]: rows the ``event_type`` dataclass would accept (False means: ask the dataclass)."""
    rule = RULES.get(event_type)
    n = len(next(iter(columns.values()))) if columns else 0
    if rule is None or n == 0:
        return np.zeros(n, bool)
    return np.asarray(rule(columns), dtype=bool)
