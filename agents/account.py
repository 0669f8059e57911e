"""Account state: open risk and closed P&L of one symbol's trades, updated by pure functions.

- ``AccountState``: decided-but-not-closed trades (open risk, from ``SizeDecided``)
  and the last ``CLOSED_LEN`` closed trades in R x multiplier;
- ``apply_decision`` / ``apply_trade``: the state after a decision / a closed trade
  (both idempotent on ``signal_id``: Kafka delivers at least once);
- ``account_features``: the ``acct_*`` features point-in-time: at a signal at time T
  only decisions made and trades closed at or before T count.

The worker reads and rewrites a busy symbol's account (up to ``OPEN_LEN`` open
decisions) at every signal, so the state is kept as columns (ids, timestamps,
numbers), each sorted by time (``agents.rows.Rows``): a decision is a bisect and,
in the usual case, an append to lists shared with the previous state; the
features are bisects; no per-trade Python work. Each state derived by
``apply_decision``/``apply_trade`` also carries the
exact open-risk sum (``agents.exact_sum``) and hands on an id index
(``_IdIndex``), so neither the idempotency check nor the features scan the
columns. A state built from trades out of time order (only ever by hand) is sorted
on construction exactly as the per-trade rules would see it: see
``AccountState.__init__``. Serialised as packed arrays (``agents.account_codec``);
the version-1 JSON form still loads.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from operator import le
from typing import Final

from agents import account_codec, exact_sum
from agents.rows import Rows
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


class _IdIndex:
    """Signal id -> copies, of the open and of the closed trades of the one state that owns it.

    States are immutable, yet rebuilding an index at every decision would cost
    what it saves. So an index is handed on: the state derived from its owner
    takes it over (updated in place) and the old state loses it (``version``
    moves on). A state that has no index, or lost it, builds its own when asked.
    """

    __slots__ = ("closed", "open", "version")

    def __init__(self, o: Rows, c: Rows) -> None:
        self.open: Counter[str] = Counter(o.ids)
        self.closed: Counter[str] = Counter(c.ids)
        self.version = 0


def _discount(counts: Counter[str], ids: Iterable[str]) -> None:
    for sid in ids:
        n = counts[sid] - 1
        if n:
            counts[sid] = n
        else:
            del counts[sid]


def _columns(ids: Iterable[str], ts: Iterable[int], values: Iterable[float]) -> Rows:
    """Rows of ``str``/``int``/``float`` sorted by time (``_sorted``)."""
    ids, ts, values = list(map(str, ids)), list(map(int, ts)), list(map(float, values))
    if not (len(ids) == len(ts) == len(values)):
        raise ValueError(f"column lengths differ: {len(ids)}, {len(ts)}, {len(values)}")
    return _sorted(ids, ts, values)


def _sorted(ids: list[str], ts: list[int], values: list[float]) -> Rows:
    """Rows ordered by time, ties in their given order (a stable sort, as ``sorted(..., key=ts)``)."""
    if all(map(le, ts, ts[1:])):
        return Rows(ids, ts, values)
    order = sorted(range(len(ts)), key=ts.__getitem__)
    return Rows([ids[i] for i in order], [ts[i] for i in order], [values[i] for i in order])


class AccountState:
    """Open decisions (``open``) and closed trades (``closed``) of one symbol, each ordered by time.

    Built from ``OpenTrade``/``ClosedTrade`` sequences; they are kept sorted by
    ``ts_us``/``exit_ts_us`` (stable), the order every rule reads them in.
    Immutable; equal when their trades are equal.
    """

    __slots__ = ("_closed", "_index", "_open", "_open_sum", "_version")
    _open: Rows
    _closed: Rows
    _open_sum: int | None  # exact sum of the open multipliers (``agents.exact_sum``), None: not known
    _index: _IdIndex | None  # this state's, while ``_index.version == _version``
    _version: int

    def __init__(self, open: tuple[OpenTrade, ...] = (), closed: tuple[ClosedTrade, ...] = ()) -> None:
        o = _columns([t.signal_id for t in open], [t.ts_us for t in open], [t.multiplier for t in open])
        c = _columns([t.signal_id for t in closed], [t.exit_ts_us for t in closed], [t.pnl_r for t in closed])
        object.__setattr__(self, "_open", o)
        object.__setattr__(self, "_closed", c)
        object.__setattr__(self, "_open_sum", None)
        object.__setattr__(self, "_index", None)
        object.__setattr__(self, "_version", 0)

    @classmethod
    def _of(
        cls, open_cols: Rows, closed_cols: Rows, open_sum: int | None = None, index: _IdIndex | None = None
    ) -> AccountState:
        """A state from columns already sorted by time (no copy, no check).

        ``open_sum`` must be the exact sum of ``open_cols.values`` (or None);
        ``index`` must describe the ids of these columns: the new state takes it over.
        """
        state = object.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(state, "_open", open_cols)
        setattr_(state, "_closed", closed_cols)
        setattr_(state, "_open_sum", open_sum)
        setattr_(state, "_index", index)
        if index is not None:
            index.version += 1
        setattr_(state, "_version", index.version if index is not None else 0)
        return state

    def _ids(self) -> _IdIndex:
        """The id index of this state: its own, or a new one when it has none or handed it on."""
        index = self._index
        if index is None or index.version != self._version:
            index = _IdIndex(self._open, self._closed)
            object.__setattr__(self, "_index", index)
            object.__setattr__(self, "_version", 0)
        return index

    def _exact_open_sum(self) -> int | None:
        """The exact sum of the open multipliers (computed once), None when one is not finite."""
        if self._open_sum is None:
            object.__setattr__(self, "_open_sum", exact_sum.scaled_sum(self._open.values))
        return self._open_sum

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"AccountState is immutable (tried to set {name})")

    @property
    def open(self) -> tuple[OpenTrade, ...]:
        o = self._open
        return tuple(map(OpenTrade, o.ids, o.ts, o.values))

    @property
    def closed(self) -> tuple[ClosedTrade, ...]:
        c = self._closed
        return tuple(map(ClosedTrade, c.ids, c.ts, c.values))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AccountState):
            return NotImplemented
        return self._open == other._open and self._closed == other._closed

    def __hash__(self) -> int:
        return hash((self._open, self._closed))

    def __repr__(self) -> str:
        return f"AccountState(open={len(self._open)} trades, closed={len(self._closed)} trades)"

    def to_bytes(self) -> bytes:
        o, c = self._open, self._closed
        packed = account_codec.pack(o.ids, o.ts, o.values, c.ids, c.ts, c.values)
        return packed if packed is not None else self.to_json_bytes()

    def to_json_bytes(self) -> bytes:
        """The version-1 JSON form (still used when a signal id cannot be packed)."""
        o, c = self._open, self._closed
        body = {
            "v": JSON_VERSION,
            "o": [list(t) for t in zip(o.ids, o.ts, o.values, strict=True)],
            "c": [list(t) for t in zip(c.ids, c.ts, c.values, strict=True)],
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> AccountState:
        try:
            if account_codec.is_packed(raw):
                o_ids, o_ts, o_mult, c_ids, c_ts, c_pnl = account_codec.unpack(raw)  # exact ints and floats
                return cls._of(
                    _sorted(list(o_ids), list(o_ts), list(o_mult)), _sorted(list(c_ids), list(c_ts), list(c_pnl))
                )
            body = load_versioned(raw, "account state")
            o = [(str(s), int(t), float(m)) for s, t, m in body["o"]]
            c = [(str(s), int(t), float(p)) for s, t, p in body["c"]]
            return cls._of(
                _columns(*zip(*o, strict=True)) if o else Rows([], [], []),
                _columns(*zip(*c, strict=True)) if c else Rows([], [], []),
            )
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
    index = account._ids()
    if sid in index.open or sid in index.closed:
        return account
    ts = to_micros(decision.ts_event)
    multiplier = float(decision.multiplier)
    lo = o.ts_left(ts - OPEN_TTL_US)  # kept: ts_us >= horizon (all before lo are older)
    at = o.ts_right(ts, lo)  # after every decision at the same time, as a stable sort puts it
    total = account._exact_open_sum()
    kept, gone_ids, gone_values = o.inserted(lo, at, (sid, ts, multiplier), OPEN_LEN)
    total = _less(_plus(total, multiplier), gone_values)
    index.open[sid] = 1  # the index changes last: nothing above raises with it half updated
    _discount(index.open, gone_ids)
    return AccountState._of(kept, account._closed, total, index)


def apply_trade(account: AccountState, trade: TradeClosed) -> AccountState:
    """Move ``trade`` from open risk to closed P&L, in R x the multiplier it was sized with.

    A trade whose decision the account never saw counts with multiplier 1.0.
    """
    sid = trade.signal_id
    o, c = account._open, account._closed
    index = account._ids()
    if sid in index.closed:
        return account
    multiplier = 1.0
    total = account._exact_open_sum()
    if sid in index.open:
        multiplier = o.value_at(o.index(sid))  # the first copy's (a hand-built state may hold an id twice)
        o, gone = o.without(sid)
        total = _less(total, gone)
    exit_us = to_micros(trade.exit_ts)
    row = (sid, exit_us, float(trade.r_multiple) * multiplier)
    closed, gone_ids, _ = c.inserted(0, c.ts_right(exit_us), row, CLOSED_LEN)
    index.open.pop(sid, None)  # the index changes last: nothing above raises with it half updated
    index.closed[sid] = index.closed.get(sid, 0) + 1
    _discount(index.closed, gone_ids)
    return AccountState._of(o, closed, total, index)


def _plus(total: int | None, value: float) -> int | None:
    s = exact_sum.scaled(value) if total is not None else None
    return None if s is None or total is None else total + s


def _less(total: int | None, values: Iterable[float]) -> int | None:
    if total is None or not values:
        return total
    s = exact_sum.scaled_sum(values)
    return None if s is None else total - s


def _open_risk(o: Rows, lo: int, hi: int, total: int | None) -> float:
    """``math.fsum`` of the values in rows ``[lo, hi)``, from the exact sum of all of them less the few outside."""
    if total is not None and hi > lo:
        inside = _less(_less(total, o.values_between(0, lo)), o.values_between(hi, len(o)))
        if inside:  # zero: fsum's sign of zero (all -0.0 gives -0.0) is not in an integer
            return exact_sum.to_float(inside)
    return math.fsum(o.values_between(lo, hi))


def account_features(account: AccountState, at_us: int) -> dict[str, float]:
    """``acct_*`` features at time ``at_us``; the session is the UTC day of ``at_us``."""
    c, o = account._closed, account._open
    day_start = at_us - at_us % DAY_US
    lo, hi = c.ts_left(day_start), c.ts_right(at_us)
    equity = peak = 0.0
    for pnl in c.values_between(lo, hi):
        equity += pnl
        peak = max(peak, equity)
    o_lo, o_hi = o.ts_left(at_us - OPEN_TTL_US), o.ts_right(at_us)
    return {
        "acct_session_pnl_r": equity,
        "acct_drawdown_r": peak - equity,
        "acct_open_risk_r": _open_risk(o, o_lo, o_hi, account._exact_open_sum()),
        "acct_session_trades": float(hi - lo),
        "acct_open_trades": float(max(o_hi - o_lo, 0)),
    }
