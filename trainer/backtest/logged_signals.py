"""Recorded history -> the ``LoggedSignals`` every policy replays over, through the backtest's own code.

``from_history(history, strategy_map)`` takes a ``trainer.backtest.events.History`` (the events
``rlsizer backtest`` replays, in its order) and returns:

- **rows**: the signals of the history's window that the backtest decides, in its decision
  order, with the features it computes for them (``trainer.backtest.run.run_policy`` with the
  fixed policy: bar, signal, time, family and strategy-history features do not depend on the
  policy; the account columns are recomputed per policy by the environment);
- **labels**: R and cost in R as the backtest scores them (the recorded ``TradeClosed``, if
  after the signal; ``trainer.backtest.run.cost_in_r``), NaN where it scores nothing, and when
  that outcome was recorded (``outcome_ts``: a training range uses only outcomes known by its end);
- **account log** (``trainer.learning.environment.AccountLog``): per symbol, the decisions and closed
  trades in the backtest's order (the inputs in log order; a trade closes at its exit fill),
  and each row's live decision.

So training, the gate and ``rlsizer backtest`` read the same numbers: a policy's replay over a
window of these rows equals its backtest over that window. ``load_logged_signals`` reads the
history from a warehouse first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np

from agents.features import FEATURE_NAMES
from agents.strategy_map import StrategyMap
from schemas.events import BarClosed, OrderFilled, SignalRaised, SizeDecided, TradeClosed
from trainer.backtest.events import History, load_history
from trainer.backtest.run import fixed_policy, run_policy
from trainer.learning.environment import AccountLog, LaneItem, LoggedSignals


class NoSignals(ValueError):
    """The history holds no decided signal to build rows from."""


def account_log(
    events: Iterable[SignalRaised | TradeClosed | BarClosed | OrderFilled],
    rows: Sequence[SignalRaised],
    live: Mapping[str, SizeDecided],
    outcomes: Mapping[str, TradeClosed] | None = None,
) -> AccountLog:
    """The per-symbol account events of ``events`` (in the order given, the order they are applied).

    A signal that is one of ``rows`` becomes its row; another signal with a decision in ``live``
    becomes that decision (it is decided as live decided it). A trade closes where its exit is:
    a ``TradeClosed`` in ``events``, or an exit ``OrderFilled`` whose trade's recorded outcome is
    in ``outcomes`` (the backtest derives that same outcome from the fill there and applies it to
    the account; only the signal id, exit time and R are read). The first close of a signal is
    applied, repeats are not (the account ignores them). Only the first occurrence of a signal id
    counts, as in the backtest.
    """
    row_of = {s.signal_id: i for i, s in enumerate(rows)}
    lanes: dict[str, list[LaneItem]] = {}
    seen: set[str] = set()
    closed: set[str] = set()
    outcomes = outcomes or {}
    for ev in events:
        if isinstance(ev, OrderFilled):
            closing = outcomes.get(ev.signal_id) if ev.leg == "EXIT" else None
            if closing is None:
                continue
            ev = closing
        if isinstance(ev, TradeClosed):
            if ev.signal_id not in closed:
                closed.add(ev.signal_id)
                lanes.setdefault(ev.symbol, []).append(ev)
        elif isinstance(ev, SignalRaised):
            if ev.signal_id in seen:
                continue
            seen.add(ev.signal_id)
            row = row_of.get(ev.signal_id)
            if row is not None:
                lanes.setdefault(ev.symbol, []).append(row)
            elif (decision := live.get(ev.signal_id)) is not None:
                lanes.setdefault(ev.symbol, []).append(decision)
    return AccountLog(
        lanes=tuple(tuple(items) for _, items in sorted(lanes.items())),
        live=tuple(live.get(s.signal_id) for s in rows),
        signals=tuple(rows),
    )


def from_history(
    history: History, strategy_map: StrategyMap, *, feature_names: Sequence[str] = FEATURE_NAMES
) -> LoggedSignals:
    """The rows, labels and account log of ``history``'s window (module docstring)."""
    run = run_policy(history, fixed_policy(), strategy_map)
    if not run.signal_ids:
        raise NoSignals(f"no decided signal between {history.start.isoformat()} and {history.end.isoformat()}")
    signals: dict[str, SignalRaised] = {}
    for ev in history.events:
        if isinstance(ev, SignalRaised):
            signals.setdefault(ev.signal_id, ev)
    outcomes = history.outcomes  # the first recorded per signal: the one the backtest scores
    rows = [signals[sid] for sid in run.signal_ids]
    names = tuple(feature_names)
    features = np.array([[run.features[sid].features[n] for n in names] for sid in run.signal_ids], dtype=np.float64)
    log = account_log(history.events, rows, history.decisions, outcomes)
    outcome_ts = np.array(
        [
            outcomes[sid].ts_event.replace(tzinfo=None) if scored else None
            for sid, scored in zip(run.signal_ids, run.scored, strict=True)
        ],
        dtype="datetime64[us]",
    )
    return LoggedSignals(
        features=features,
        feature_names=names,
        r_multiple=np.where(run.scored, run.r_multiple, np.nan),
        cost_r=np.where(run.scored, run.cost_r, np.nan),
        family=np.asarray(run.family, dtype=str),
        ts=run.ts.astype("datetime64[us]"),
        symbol=np.asarray(run.symbol, dtype=str),
        row_id=np.arange(len(rows), dtype=np.int64),
        account=log,
        outcome_ts=outcome_ts,
    )


def history_bounds(con: duckdb.DuckDBPyConnection) -> tuple[datetime, datetime] | None:
    """[first signal, just after the last signal or outcome) of the warehouse, UTC-aware; None without signals.

    The end reaches past the last outcome so that the last signals are scored: a backtest scores
    the outcomes its window loads (``ts_event < end``).
    """
    row = con.execute(
        "SELECT (SELECT min(ts_event) FROM signals), greatest((SELECT max(ts_event) FROM signals), (SELECT max(ts_event) FROM outcomes))"
    ).fetchone()
    first, last = row if row is not None else (None, None)  # an aggregate query returns one row
    if first is None:
        return None
    return first.replace(tzinfo=UTC), last.replace(tzinfo=UTC) + timedelta(microseconds=1)


def load_logged_signals(
    con: duckdb.DuckDBPyConnection,
    strategy_map: StrategyMap,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> LoggedSignals:
    """``from_history`` of the warehouse's history over ``[start, end)`` (default: all of it)."""
    bounds = history_bounds(con)
    if bounds is None:
        raise NoSignals("the warehouse holds no signal")
    history = load_history(con, start or bounds[0], end or bounds[1])
    return from_history(history, strategy_map)
