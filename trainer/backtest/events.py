"""The recorded history a backtest replays, read from the warehouse in the order the worker read it.

``load_history(con, start, end)`` returns:

- ``events``: every ``BarClosed``, ``SignalRaised`` and ``OrderFilled`` of the
  ``inputs`` topic stamped before ``end``, in **log order** -- per partition by offset,
  which is the order the worker applied them in (a symbol's inputs are one partition;
  symbols are independent, so partitions may interleave) -- less the ones the worker
  dead-lettered (stale, ahead of its clock, on the wrong partition, rejected fills...);
- ``outcomes``: the recorded ``TradeClosed`` per signal (the first recorded), for scoring;
- ``decisions`` / ``features``: the recorded (live) ``SizeDecided`` and
  ``FeaturesComputed`` by ``signal_id`` (the first recorded, as ``trainer.warehouse.dataset``
  picks them), for warm-up and for the parity cross-check;
- ``window_ids``: the signals with ``start <= ts_event < end`` (the ones a policy sizes).

So a backtest (``trainer.backtest.run.run_policy``) applies exactly the inputs the worker
applied, in the same order, through the same ``agents.book`` functions: with the
policy that decided each signal live, it recomputes the live features and multipliers
exactly (``trainer.backtest.parity``). The warm-up before ``start`` replays the
recorded decisions, so the account at the window's start is the live one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

import duckdb

from schemas.events import BarClosed, Event, FeaturesComputed, OrderFilled, SignalRaised, SizeDecided, TradeClosed
from trainer.warehouse.store import TABLE_FOR_EVENT


@dataclass(frozen=True, slots=True, eq=False)
class History:
    events: tuple[BarClosed | SignalRaised | OrderFilled, ...]
    outcomes: Mapping[str, TradeClosed]
    decisions: Mapping[str, SizeDecided]
    features: Mapping[str, FeaturesComputed]
    window_ids: frozenset[str]
    start: datetime
    end: datetime


def _naive_utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValueError(f"window bounds must be timezone-aware, got {ts!r}")
    return ts.astimezone(UTC).replace(tzinfo=None)


def _to_event(event_type: type[Event], names: tuple[str, ...], row: tuple[Any, ...]) -> Event:
    values: dict[str, Any] = {}
    for name, value in zip(names, row, strict=True):
        if isinstance(value, datetime):
            value = value.replace(tzinfo=UTC)
        if value is None:
            continue  # the dataclass default (None or an empty map) applies
        values[name] = value
    return event_type(**values)


def select_events(
    con: duckdb.DuckDBPyConnection, event_type: type[Event], where: str, params: list[Any]
) -> list[tuple[Event, int, int]]:
    """``(event, partition, offset)`` of the rows of ``event_type``'s table matching ``where`` (rows alias ``t``)."""
    spec = TABLE_FOR_EVENT[event_type]
    cols = ", ".join(f't."{n}"' for n in spec.field_names)
    rows = con.execute(f"SELECT {cols}, t._partition, t._offset FROM {spec.reader} AS t {where}", params).fetchall()
    n = len(spec.field_names)
    return [(_to_event(event_type, spec.field_names, r[:n]), int(r[n]), int(r[n + 1])) for r in rows]


def _first_by_signal(items: list[tuple[Event, int, int]]) -> dict[str, Any]:
    """The first recorded event per signal_id (by ts_event, ts_init, event_id, as trainer.warehouse.dataset)."""
    out: dict[str, Any] = {}
    for event, _, _ in sorted(items, key=lambda x: (x[0].ts_event, x[0].ts_init, x[0].event_id)):
        out.setdefault(event.signal_id, event)  # type: ignore[attr-defined]
    return out


NOT_DEAD_LETTERED: Final = """NOT EXISTS (SELECT 1 FROM dlq AS d WHERE d.source_topic = t._topic
    AND d.source_partition = t._partition AND d.source_offset = t._offset)"""
"""Rows of inputs the worker applied: not dead-lettered by it (a ``dlq`` row names the record's position)."""

INPUT_TYPES: Final = (BarClosed, SignalRaised, OrderFilled)


def load_history(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, *, symbols: tuple[str, ...] | None = None
) -> History:
    """The events a backtest of ``[start, end)`` replays (see the module doc)."""
    if not start < end:
        raise ValueError(f"empty window: from {start.isoformat()} is not before to {end.isoformat()}")
    s, e = _naive_utc(start), _naive_utc(end)
    sym_filter, sym_params = ("", []) if symbols is None else (" AND t.symbol IN (SELECT unnest(?))", [list(symbols)])
    inputs: list[tuple[Event, int, int]] = []
    for event_type in INPUT_TYPES:
        inputs += select_events(
            con, event_type, f"WHERE t.ts_event < ?{sym_filter} AND {NOT_DEAD_LETTERED}", [e, *sym_params]
        )
    inputs.sort(key=lambda x: (x[1], x[2]))  # log order: per partition by offset
    outcomes = _first_by_signal(select_events(con, TradeClosed, f"WHERE true{sym_filter}", sym_params))
    decisions = _first_by_signal(select_events(con, SizeDecided, f"WHERE t.ts_event < ?{sym_filter}", [e, *sym_params]))
    features = _first_by_signal(
        select_events(
            con, FeaturesComputed, f"WHERE t.ts_event >= ? AND t.ts_event < ?{sym_filter}", [s, e, *sym_params]
        )
    )
    window_ids = frozenset(
        ev.signal_id for ev, _, _ in inputs if isinstance(ev, SignalRaised) and start <= ev.ts_event < end
    )
    return History(
        events=tuple(ev for ev, _, _ in inputs),  # type: ignore[misc]
        outcomes=MappingProxyType(outcomes),
        decisions=MappingProxyType(decisions),
        features=MappingProxyType(features),
        window_ids=window_ids,
        start=start,
        end=end,
    )
