"""Strategy history and account state: small values updated by pure functions.

- ``StrategyHistory``: the last ``HISTORY_LEN`` closed trades of one strategy,
  updated by ``apply_outcome(history, trade)`` (here);
- ``AccountState``: open risk and closed P&L, updated by ``apply_decision`` and
  ``apply_trade`` (``agents.account``, re-exported here).

Both deduplicate on ``signal_id`` (Kafka delivers at least once) and keep
event timestamps, so their features are read point-in-time: at a signal at time
T only trades that closed at or before T count (``history_features``,
``account_features``). Serialised with ``to_bytes``/``from_bytes`` for Faust
tables: compact versioned JSON for the history, packed arrays for the account.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass
from typing import Final

from agents.account import (  # re-exported (__all__): the account half of the state
    CLOSED_LEN,
    OPEN_LEN,
    OPEN_TTL_US,
    AccountState,
    ClosedTrade,
    OpenTrade,
    account_features,
    apply_decision,
    apply_trade,
)
from agents.state_json import JSON_VERSION, StateCorrupt, load_versioned
from agents.timestamps import to_micros
from schemas.events import TradeClosed

__all__ = [
    "CLOSED_LEN",
    "HISTORY_LEN",
    "OPEN_LEN",
    "OPEN_TTL_US",
    "AccountState",
    "ClosedTrade",
    "OpenTrade",
    "Outcome",
    "StrategyHistory",
    "account_features",
    "apply_decision",
    "apply_outcome",
    "apply_trade",
    "history_features",
]

HISTORY_LEN: Final = 50
"""Closed trades per strategy the history features look at."""


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
        body = {
            "v": JSON_VERSION,
            "s": self.strategy_id,
            "o": [[o.signal_id, o.exit_ts_us, o.r_multiple] for o in self.outcomes],
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> StrategyHistory:
        body = load_versioned(raw, "strategy history")
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
        return {
            "strat_win_rate": 0.5,
            "strat_mean_r": 0.0,
            "strat_std_r": 0.0,
            "strat_last_r": 0.0,
            "strat_streak": 0.0,
            "strat_n_trades": 0.0,
        }
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
