"""Per-symbol bar state: a fixed-size ring of the last ``WINDOW`` bars in numpy arrays.

``SymbolState`` is a value: ``updated(bar)`` returns a new state and leaves the
old one alone, with O(WINDOW) work per bar whatever the history length. Bars
must arrive in ``ts_event`` order; an earlier bar is rejected as
``out_of_order`` and a bar with the same ``ts_event`` as ``duplicate`` (the
at-least-once delivery of Kafka makes duplicates normal; rejecting them keeps
replays idempotent).

``ts_event`` of a bar is taken as the time the bar closed: a signal at time T
may use every bar with ``ts_event <= T``.

The serialised form (``to_bytes``) is a small header followed by the raw
little-endian arrays, for Faust table changelogs.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from agents.timestamps import from_micros, to_micros
from schemas.events import BarClosed

WINDOW: Final = 250
FEATURE_BARS: Final = 200
"""Bars the features are computed from: the last ``FEATURE_BARS`` at or before the signal.

The ring holds ``WINDOW - FEATURE_BARS`` more, so up to 50 bars that arrived
after a signal (a signal processed late) do not shorten its history, and the
features stay a function of the bars before the signal alone.
"""
COLUMNS: Final[tuple[str, ...]] = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "bid",
    "ask",
    "bid_size",
    "ask_size",
)
_COL = {name: i for i, name in enumerate(COLUMNS)}
_MAGIC: Final = b"RSS1"
_HEADER: Final = struct.Struct("<4sHHII")  # magic, window, n columns, count, head
REJECT_KINDS: Final = ("out_of_order", "duplicate", "symbol_mismatch", "interval_mismatch")


class BarRejected(ValueError):
    """A bar cannot be applied to the state; ``kind`` is one of ``REJECT_KINDS``."""

    def __init__(self, *, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


class StateCorrupt(ValueError):
    """Serialised symbol state cannot be decoded."""


@dataclass(frozen=True, slots=True)
class Window:
    """The bars of a state in time order, as contiguous float64 arrays (read-only use)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])


class SymbolState:
    """The last ``window`` bars of one symbol and interval."""

    __slots__ = ("_count", "_data", "_derived", "_head", "_ts", "interval", "symbol")

    def __init__(
        self,
        symbol: str,
        interval: str,
        *,
        window: int = WINDOW,
        _ts: np.ndarray | None = None,
        _data: np.ndarray | None = None,
        _count: int = 0,
        _head: int = 0,
    ) -> None:
        if window < 2:
            raise ValueError(f"window must be >= 2 bars, got {window}")
        self.symbol = symbol
        self.interval = interval
        self._ts = np.zeros(window, dtype="<i8") if _ts is None else _ts
        self._data = np.full((window, len(COLUMNS)), np.nan, dtype="<f8") if _data is None else _data
        self._count = _count
        self._head = _head  # index the next bar is written to
        self._derived: dict[tuple[Hashable, int, int | None], Any] = {}  # see ``derived``

    @classmethod
    def empty_for(cls, bar: BarClosed, *, window: int = WINDOW) -> SymbolState:
        return cls(bar.symbol, bar.interval, window=window)

    @property
    def window(self) -> int:
        return int(self._ts.shape[0])

    @property
    def count(self) -> int:
        return self._count

    @property
    def last_ts_us(self) -> int | None:
        if self._count == 0:
            return None
        return int(self._ts[(self._head - 1) % self.window])

    def holds_all_since(self, ts_us: int) -> bool:
        """Every bar of the symbol closing after ``ts_us`` is still in the ring (none of them dropped out).

        A full ring whose oldest bar closed after ``ts_us`` answers False even if nothing
        dropped out yet: the ring does not count what it dropped."""
        if self._count < self.window:
            return True
        return int(self._ts[(self._head - self._count) % self.window]) <= ts_us

    def check(self, bar: BarClosed) -> None:
        """Raise ``BarRejected`` if ``bar`` cannot follow this state."""
        if bar.symbol != self.symbol:
            raise BarRejected(
                kind="symbol_mismatch", reason=f"bar for {bar.symbol!r} sent to the state of {self.symbol!r}"
            )
        if bar.interval != self.interval:
            raise BarRejected(
                kind="interval_mismatch",
                reason=f"{self.symbol} state holds {self.interval!r} bars, got a {bar.interval!r} bar; "
                f"publish one interval per symbol to this worker",
            )
        last = self.last_ts_us
        if last is None:
            return
        ts = to_micros(bar.ts_event)
        if ts == last:
            raise BarRejected(kind="duplicate", reason=f"{self.symbol} already has a bar at {bar.ts_event.isoformat()}")
        if ts < last:
            raise BarRejected(
                kind="out_of_order",
                reason=f"{self.symbol} bar at {bar.ts_event.isoformat()} is earlier than the last bar "
                f"at {from_micros(last).isoformat()}",
            )

    def updated(self, bar: BarClosed) -> SymbolState:
        """A new state with ``bar`` appended (the oldest bar falls out when full)."""
        self.check(bar)
        ts = self._ts.copy()
        data = self._data.copy()
        ts[self._head] = to_micros(bar.ts_event)
        row = data[self._head]
        for name in COLUMNS:
            value = getattr(bar, name)
            row[_COL[name]] = np.nan if value is None else float(value)
        return SymbolState(
            self.symbol,
            self.interval,
            window=self.window,
            _ts=ts,
            _data=data,
            _count=min(self._count + 1, self.window),
            _head=(self._head + 1) % self.window,
        )

    def _order(self) -> np.ndarray:
        return (self._head - self._count + np.arange(self._count)) % self.window

    def bars_until(self, ts_us: int, *, limit: int | None = None) -> Window:
        """The last ``limit`` bars with ``ts_event <= ts_us``, in time order (point-in-time view)."""
        order = self._order()
        ts = self._ts[order]
        cut = int(np.searchsorted(ts, ts_us, side="right"))
        start = 0 if limit is None else max(0, cut - limit)
        rows = order[start:cut]
        data = self._data[rows]
        cols = {name: np.ascontiguousarray(data[:, i]) for i, name in enumerate(COLUMNS)}
        return Window(ts=self._ts[rows], **cols)

    def derived(self, fn: Callable[[Window], Any], ts_us: int, *, limit: int | None = None) -> Any:
        """``fn(self.bars_until(ts_us, limit=limit))``, computed once per bar selection of this state.

        Signals between two bars see the same bars; a state is never changed in
        place (``updated`` returns a new one), so a value stored here cannot go
        stale. ``fn`` must be pure and its result must not be mutated.
        """
        last = self.last_ts_us
        if last is not None and ts_us >= last:  # the usual case: the signal is after the last bar
            cut = self._count
        else:
            cut = int(np.searchsorted(self._ts[self._order()], ts_us, side="right"))
        key = (fn, cut, limit)
        try:
            return self._derived[key]
        except KeyError:
            value = self._derived[key] = fn(self.bars_until(ts_us, limit=limit))
            return value

    # -- serialisation -------------------------------------------------------------

    def to_bytes(self) -> bytes:
        sym = self.symbol.encode()
        itv = self.interval.encode()
        header = _HEADER.pack(_MAGIC, self.window, len(COLUMNS), self._count, self._head)
        names = struct.pack("<HH", len(sym), len(itv)) + sym + itv
        return header + names + self._ts.astype("<i8").tobytes() + self._data.astype("<f8").tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> SymbolState:
        try:
            magic, window, ncols, count, head = _HEADER.unpack_from(raw, 0)
            if magic != _MAGIC:
                raise StateCorrupt(f"not a symbol state (magic {magic!r}, expected {_MAGIC!r})")
            if ncols != len(COLUMNS) or count > window or head >= window:
                raise StateCorrupt(f"inconsistent header window={window} columns={ncols} count={count} head={head}")
            pos = _HEADER.size
            nsym, nitv = struct.unpack_from("<HH", raw, pos)
            pos += 4
            symbol = raw[pos : pos + nsym].decode()
            interval = raw[pos + nsym : pos + nsym + nitv].decode()
            pos += nsym + nitv
            ts_len = window * 8
            data_len = window * ncols * 8
            if len(raw) != pos + ts_len + data_len:
                raise StateCorrupt(f"expected {pos + ts_len + data_len} bytes, got {len(raw)}")
            ts = np.frombuffer(raw, dtype="<i8", count=window, offset=pos).copy()
            data = (
                np.frombuffer(raw, dtype="<f8", count=window * ncols, offset=pos + ts_len).reshape(window, ncols).copy()
            )
        except (struct.error, UnicodeDecodeError, ValueError) as exc:
            if isinstance(exc, StateCorrupt):
                raise
            raise StateCorrupt(f"cannot decode symbol state: {exc}") from exc
        return cls(symbol, interval, window=window, _ts=ts, _data=data, _count=count, _head=head)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SymbolState):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        last = self.last_ts_us
        when = from_micros(last).isoformat() if last is not None else "never"
        return f"SymbolState({self.symbol!r}, {self.interval!r}, bars={self._count}/{self.window}, last={when})"
