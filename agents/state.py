"""Strategy history and account state: small values updated by pure functions.

- ``StrategyHistory``: the last ``HISTORY_LEN`` closed trades of one strategy,
  updated by ``apply_outcome(history, trade)``.
- ``AccountState``: decided-but-not-closed trades (open risk, from
  ``SizeDecided``) and the last ``CLOSED_LEN`` closed trades in R x multiplier,
  updated by ``apply_decision`` and ``apply_trade``.

Both deduplicate on ``signal_id`` (Kafka delivers at least once) and keep
event timestamps, so their features are read point-in-time: at a signal at time
T only trades that closed at or before T count (``history_features``,
``account_features``). Serialised with ``to_bytes``/``from_bytes`` for Faust
tables: compact versioned JSON, except the account, which can hold a thousand
open decisions and is rewritten on every signal, so it is written as packed
arrays (``agents.account_codec``); its JSON form still loads.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass
from datetime import timedelta
from operator import attrgetter
from typing import Final

from agents import account_codec
from agents.timestamps import DAY_US, to_micros
from schemas.events import SizeDecided, TradeClosed

HISTORY_LEN: Final = 50
"""Closed trades per strategy the history features look at."""
CLOSED_LEN: Final = 512
"""Closed trades the account keeps (session P&L counts at most this many per UTC day)."""
OPEN_LEN: Final = 1024
"""Open decisions the account keeps; the oldest fall out beyond this."""
OPEN_TTL_US: Final = int(timedelta(days=7) / timedelta(microseconds=1))
"""A decision with no TradeClosed after this long (order never filled, lost outcome) stops counting as open risk."""
_VERSION: Final = 1


class StateCorrupt(ValueError):
    """Serialised history or account state cannot be decoded."""


# -- strategy history ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    signal_id: str
    exit_ts_us: int
    r_multiple: float


@dataclass(frozen=True, slots=True)
class StrategyHistory:
    """The last closed trades of one strategy, ordered by exit time (oldest first)."""

    strategy_id: str
    outcomes: tuple[Outcome, ...] = ()

    @classmethod
    def empty(cls, strategy_id: str) -> StrategyHistory:
        return cls(strategy_id)

    def to_bytes(self) -> bytes:
        body = {"v": _VERSION, "s": self.strategy_id, "o": [[o.signal_id, o.exit_ts_us, o.r_multiple] for o in self.outcomes]}
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> StrategyHistory:
        body = _load(raw, "strategy history")
        try:
            return cls(body["s"], tuple(Outcome(str(s), int(t), float(r)) for s, t, r in body["o"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise StateCorrupt(f"cannot decode strategy history: {exc!r}") from exc


def apply_outcome(history: StrategyHistory, trade: TradeClosed) -> StrategyHistory:
    """``history`` with ``trade`` added (a no-op for a signal_id already seen)."""
    if trade.strategy_id != history.strategy_id:
        raise ValueError(
            f"trade {trade.signal_id} of strategy {trade.strategy_id!r} applied to the history of {history.strategy_id!r}"
        )
    if any(o.signal_id == trade.signal_id for o in history.outcomes):
        return history
    outcome = Outcome(trade.signal_id, to_micros(trade.exit_ts), float(trade.r_multiple))
    outcomes = list(history.outcomes)
    bisect.insort(outcomes, outcome, key=lambda o: o.exit_ts_us)
    return StrategyHistory(history.strategy_id, tuple(outcomes[-HISTORY_LEN:]))


def history_features(history: StrategyHistory, at_us: int) -> dict[str, float]:
    """``strat_*`` features from the trades closed at or before ``at_us``."""
    rs = [o.r_multiple for o in history.outcomes if o.exit_ts_us <= at_us]
    if not rs:
        return {"strat_win_rate": 0.5, "strat_mean_r": 0.0, "strat_std_r": 0.0, "strat_last_r": 0.0,
                "strat_streak": 0.0, "strat_n_trades": 0.0}
    n = len(rs)
    mean = math.fsum(rs) / n
    std = math.sqrt(math.fsum((r - mean) ** 2 for r in rs) / n)
    last_win = rs[-1] > 0
    streak = 0
    for r in reversed(rs):
        if (r > 0) != last_win:
            break
        streak += 1
    return {
        "strat_win_rate": sum(1 for r in rs if r > 0) / n,
        "strat_mean_r": mean,
        "strat_std_r": std,
        "strat_last_r": rs[-1],
        "strat_streak": float(streak if last_win else -streak),
        "strat_n_trades": float(n),
    }


# -- account ---------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class AccountState:
    open: tuple[OpenTrade, ...] = ()
    closed: tuple[ClosedTrade, ...] = ()

    def to_bytes(self) -> bytes:
        packed = account_codec.pack(
            [t.signal_id for t in self.open], [t.ts_us for t in self.open], [t.multiplier for t in self.open],
            [t.signal_id for t in self.closed], [t.exit_ts_us for t in self.closed], [t.pnl_r for t in self.closed],
        )
        return packed if packed is not None else self.to_json_bytes()

    def to_json_bytes(self) -> bytes:
        """The version-1 JSON form (still used when a signal id cannot be packed)."""
        body = {
            "v": _VERSION,
            "o": [[t.signal_id, t.ts_us, t.multiplier] for t in self.open],
            "c": [[t.signal_id, t.exit_ts_us, t.pnl_r] for t in self.closed],
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> AccountState:
        if account_codec.is_packed(raw):
            try:
                o_ids, o_ts, o_mult, c_ids, c_ts, c_pnl = account_codec.unpack(raw)
            except ValueError as exc:
                raise StateCorrupt(f"cannot decode account state: {exc}") from exc
            return cls(tuple(map(OpenTrade, o_ids, o_ts, o_mult)), tuple(map(ClosedTrade, c_ids, c_ts, c_pnl)))
        body = _load(raw, "account state")
        try:
            return cls(
                tuple(OpenTrade(str(s), int(t), float(m)) for s, t, m in body["o"]),
                tuple(ClosedTrade(str(s), int(t), float(p)) for s, t, p in body["c"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateCorrupt(f"cannot decode account state: {exc!r}") from exc


def apply_decision(account: AccountState, decision: SizeDecided) -> AccountState:
    """Count ``decision`` as open risk until its trade closes (idempotent on signal_id)."""
    sid = decision.signal_id
    if sid in map(_SIGNAL_ID, account.open) or sid in map(_SIGNAL_ID, account.closed):
        return account
    ts = to_micros(decision.ts_event)
    horizon = ts - OPEN_TTL_US
    kept = [t for t in account.open if t.ts_us >= horizon]
    kept.append(OpenTrade(sid, ts, float(decision.multiplier)))
    kept.sort(key=_TS_US)
    return AccountState(tuple(kept[-OPEN_LEN:]), account.closed)


def apply_trade(account: AccountState, trade: TradeClosed) -> AccountState:
    """Move ``trade`` from open risk to closed P&L, in R x the multiplier it was sized with.

    A trade whose decision the account never saw counts with multiplier 1.0.
    """
    sid = trade.signal_id
    if sid in map(_SIGNAL_ID, account.closed):
        return account
    multiplier = next((t.multiplier for t in account.open if t.signal_id == sid), 1.0)
    still_open = tuple(t for t in account.open if t.signal_id != sid)
    closed = list(account.closed)
    bisect.insort(closed, ClosedTrade(sid, to_micros(trade.exit_ts), float(trade.r_multiple) * multiplier),
                  key=lambda t: t.exit_ts_us)
    return AccountState(still_open, tuple(closed[-CLOSED_LEN:]))


def account_features(account: AccountState, at_us: int) -> dict[str, float]:
    """``acct_*`` features at time ``at_us``; the session is the UTC day of ``at_us``."""
    day_start = at_us - at_us % DAY_US
    equity = peak = 0.0
    n_closed = 0
    for t in account.closed:
        if day_start <= t.exit_ts_us <= at_us:
            equity += t.pnl_r
            peak = max(peak, equity)
            n_closed += 1
    horizon = at_us - OPEN_TTL_US
    open_now = [t for t in account.open if horizon <= t.ts_us <= at_us]
    return {
        "acct_session_pnl_r": equity,
        "acct_drawdown_r": peak - equity,
        "acct_open_risk_r": math.fsum(map(_MULTIPLIER, open_now)),
        "acct_session_trades": float(n_closed),
        "acct_open_trades": float(len(open_now)),
    }


_SIGNAL_ID: Final = attrgetter("signal_id")
_TS_US: Final = attrgetter("ts_us")
_MULTIPLIER: Final = attrgetter("multiplier")


def _load(raw: bytes, what: str) -> dict:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateCorrupt(f"cannot decode {what}: {exc}") from exc
    if not isinstance(body, dict) or body.get("v") != _VERSION:
        raise StateCorrupt(f"{what}: unsupported format {str(body)[:80]!r} (expected version {_VERSION})")
    return body
