"""Account state: open risk and closed P&L of one symbol's trades, updated by pure functions.

- ``AccountState``: decided-but-not-closed trades (open risk, from ``SizeDecided``)
  and the last ``CLOSED_LEN`` closed trades in R x multiplier;
- ``apply_decision`` / ``apply_trade``: the state after a decision / a closed trade
  (both idempotent on ``signal_id``: Kafka delivers at least once);
- ``account_features``: the ``acct_*`` features point-in-time: at a signal at time T
  only decisions made and trades closed at or before T count.

The worker reads and rewrites a busy symbol's account (up to ``OPEN_LEN`` open
decisions) at every signal, so the state is kept as columns (ids, timestamps,
numbers), each sorted by time: a decision is a bisect and a C-level tuple
splice, the features are two bisects and a sum over a slice; no per-trade Python
work. A state built from trades out of time order (only ever by hand) is sorted
on construction exactly as the per-trade rules would see it: see
``AccountState.__init__``. Serialised as packed arrays (``agents.account_codec``);
the version-1 JSON form still loads.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import timedelta
from collections.abc import Iterable
from operator import le
from typing import Final, NamedTuple

from agents import account_codec
from agents.state_json import JSON_VERSION, StateCorrupt, load_versioned
from agents.timestamps import DAY_US, to_micros
from schemas.events import SizeDecided, TradeClosed

CLOSED_LEN: Final = 512
"""Closed trades the account keeps (session P&L counts at most this many per UTC day)."""
OPEN_LEN: Final = 1024
"""Open decisions the account keeps; the oldest fall out beyond this."""
OPEN_TTL_US: Final = int(timedelta(days=7) / timedelta(microseconds=1))
"""A decision with no TradeClosed after this long (order never filled, lost outcome) stops counting as open risk."""


@dataclass(frozen=True, slots=True)
class OpenTrade:
    signal_id: str
    ts_us: int
    multiplier: float


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    signal_id: str
    exit_ts_us: int
    pnl_r: float  # R multiple x the multiplier the trade was sized with


class _Columns(NamedTuple):
    ids: tuple[str, ...]
    ts: tuple[int, ...]
    values: tuple[float, ...]


_EMPTY: Final = _Columns((), (), ())


def _columns(ids: Iterable[str], ts: Iterable[int], values: Iterable[float]) -> _Columns:
    """Columns of ``str``/``int``/``float`` sorted by time (``_sorted``)."""
    cols = _Columns(tuple(map(str, ids)), tuple(map(int, ts)), tuple(map(float, values)))
    if not (len(cols.ids) == len(cols.ts) == len(cols.values)):
        raise ValueError(f"column lengths differ: {len(cols.ids)}, {len(cols.ts)}, {len(cols.values)}")
    return _sorted(cols)


def _sorted(cols: _Columns) -> _Columns:
    """``cols`` ordered by time, ties in their given order (a stable sort, as ``sorted(..., key=ts)``)."""
    if all(map(le, cols.ts, cols.ts[1:])):
        return cols
    order = sorted(range(len(cols.ts)), key=cols.ts.__getitem__)
    return _Columns(*(tuple(col[i] for i in order) for col in cols))


class AccountState:
    """Open decisions (``open``) and closed trades (``closed``) of one symbol, each ordered by time.

    Built from ``OpenTrade``/``ClosedTrade`` sequences; they are kept sorted by
    ``ts_us``/``exit_ts_us`` (stable), the order every rule reads them in.
    Immutable; equal when their trades are equal.
    """

    __slots__ = ("_open", "_closed")
    _open: _Columns
    _closed: _Columns

    def __init__(self, open: tuple[OpenTrade, ...] = (), closed: tuple[ClosedTrade, ...] = ()) -> None:  # noqa: A002
        o = _columns([t.signal_id for t in open], [t.ts_us for t in open], [t.multiplier for t in open]) if open else _EMPTY
        c = (_columns([t.signal_id for t in closed], [t.exit_ts_us for t in closed], [t.pnl_r for t in closed])
             if closed else _EMPTY)
        object.__setattr__(self, "_open", o)
        object.__setattr__(self, "_closed", c)

    @classmethod
    def _of(cls, open_cols: _Columns, closed_cols: _Columns) -> AccountState:
        """A state from columns already sorted by time (no copy, no check)."""
        state = object.__new__(cls)
        object.__setattr__(state, "_open", open_cols)
        object.__setattr__(state, "_closed", closed_cols)
        return state

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"AccountState is immutable (tried to set {name})")

    @property
    def open(self) -> tuple[OpenTrade, ...]:
        return tuple(map(OpenTrade, *self._open))

    @property
    def closed(self) -> tuple[ClosedTrade, ...]:
        return tuple(map(ClosedTrade, *self._closed))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AccountState):
            return NotImplemented
        return self._open == other._open and self._closed == other._closed

    def __hash__(self) -> int:
        return hash((self._open, self._closed))

    def __repr__(self) -> str:
        return f"AccountState(open={len(self._open.ids)} trades, closed={len(self._closed.ids)} trades)"

    def to_bytes(self) -> bytes:
        packed = account_codec.pack(*self._open, *self._closed)
        return packed if packed is not None else self.to_json_bytes()

    def to_json_bytes(self) -> bytes:
        """The version-1 JSON form (still used when a signal id cannot be packed)."""
        body = {"v": JSON_VERSION, "o": [list(t) for t in zip(*self._open)], "c": [list(t) for t in zip(*self._closed)]}
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> AccountState:
        try:
            if account_codec.is_packed(raw):
                o_ids, o_ts, o_mult, c_ids, c_ts, c_pnl = account_codec.unpack(raw)  # exact ints and floats
                return cls._of(_sorted(_Columns(tuple(o_ids), tuple(o_ts), tuple(o_mult))),
                               _sorted(_Columns(tuple(c_ids), tuple(c_ts), tuple(c_pnl))))
            body = load_versioned(raw, "account state")
            o = [(str(s), int(t), float(m)) for s, t, m in body["o"]]
            c = [(str(s), int(t), float(p)) for s, t, p in body["c"]]
            return cls._of(_columns(*zip(*o)) if o else _EMPTY, _columns(*zip(*c)) if c else _EMPTY)
        except StateCorrupt:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise StateCorrupt(f"cannot decode account state: {exc!r}") from exc


def apply_decision(account: AccountState, decision: SizeDecided) -> AccountState:
    """Count ``decision`` as open risk until its trade closes (idempotent on signal_id).

    Decisions older than ``OPEN_TTL_US`` before this one fall out, then the
    newest ``OPEN_LEN`` are kept.
    """
    sid = decision.signal_id
    o = account._open
    if sid in o.ids or sid in account._closed.ids:
        return account
    ts = to_micros(decision.ts_event)
    lo = bisect_left(o.ts, ts - OPEN_TTL_US)  # kept: ts_us >= horizon (all before lo are older)
    at = bisect_right(o.ts, ts, lo)  # after every decision at the same time, as a stable sort puts it
    return AccountState._of(_insert(o, lo, at, (sid, ts, float(decision.multiplier)), OPEN_LEN), account._closed)


def apply_trade(account: AccountState, trade: TradeClosed) -> AccountState:
    """Move ``trade`` from open risk to closed P&L, in R x the multiplier it was sized with.

    A trade whose decision the account never saw counts with multiplier 1.0.
    """
    sid = trade.signal_id
    o, c = account._open, account._closed
    if sid in c.ids:
        return account
    multiplier = 1.0
    if sid in o.ids:
        i = o.ids.index(sid)
        multiplier = o.values[i]
        if o.ids.count(sid) == 1:
            o = _Columns(*(col[:i] + col[i + 1:] for col in o))
        else:  # the same id twice (only in a hand-built state): every copy leaves
            keep = [j for j, s in enumerate(o.ids) if s != sid]
            o = _Columns(*(tuple(col[j] for j in keep) for col in o))
    exit_us = to_micros(trade.exit_ts)
    row = (sid, exit_us, float(trade.r_multiple) * multiplier)
    return AccountState._of(o, _insert(c, 0, bisect_right(c.ts, exit_us), row, CLOSED_LEN))


def _insert(cols: _Columns, lo: int, at: int, row: tuple[str, int, float], keep: int) -> _Columns:
    """``cols[lo:]`` with ``row`` inserted before index ``at``, then its last ``keep`` rows."""
    out = []
    for col, value in zip(cols, row):
        merged = col[lo:at] + (value,) + col[at:]
        out.append(merged[-keep:] if len(merged) > keep else merged)
    return _Columns(*out)


def account_features(account: AccountState, at_us: int) -> dict[str, float]:
    """``acct_*`` features at time ``at_us``; the session is the UTC day of ``at_us``."""
    c, o = account._closed, account._open
    day_start = at_us - at_us % DAY_US
    lo, hi = bisect_left(c.ts, day_start), bisect_right(c.ts, at_us)
    equity = peak = 0.0
    for pnl in c.values[lo:hi]:
        equity += pnl
        peak = max(peak, equity)
    o_lo, o_hi = bisect_left(o.ts, at_us - OPEN_TTL_US), bisect_right(o.ts, at_us)
    return {
        "acct_session_pnl_r": equity,
        "acct_drawdown_r": peak - equity,
        "acct_open_risk_r": math.fsum(o.values[o_lo:o_hi]),
        "acct_session_trades": float(hi - lo),
        "acct_open_trades": float(max(o_hi - o_lo, 0)),
    }
