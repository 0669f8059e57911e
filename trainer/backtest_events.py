"""The recorded history a backtest replays, read from the warehouse in the order the worker saw it.

``load_history(con, start, end)`` returns:

- ``events``: every ``BarClosed``, ``TradeClosed`` and ``SignalRaised`` the worker's
  state depends on up to ``end``, in **replay order**;
- ``decisions`` / ``features``: the recorded (live) ``SizeDecided`` and
  ``FeaturesComputed`` by ``signal_id`` (the first recorded, as ``trainer.dataset``
  picks them), for warm-up and for the parity cross-check;
- ``window_ids``: the signals with ``start <= ts_event < end`` (the ones a policy sizes).

**Replay order.** The worker keeps its state per symbol (bars, account) and per
strategy@symbol (history), and every state read is point-in-time: a signal at T sees
bars, outcomes and decisions with ``ts_event <= T`` only. So what matters is, within one
symbol, that everything stamped ``<= T`` is applied before a signal at T, and that
signals of the same instant are decided in the order the worker decided them (an
earlier one is open risk for a later one). The key is therefore
``(ts_event, kind, partition, offset)`` with kind ``bar < outcome < signal``: the
adapter publishes a bar, then exits at that bar, then the bar's signals; signals of
one symbol share a partition, so their offsets are the worker's processing order.

**Warm-up.** State at ``start`` must equal the live state: bars are the last
``WINDOW`` bars of each symbol before ``start`` (the ring holds no more), outcomes
and signals are all those before ``start`` (history and account keep bounded,
timestamp-ordered lists, so older ones fall out exactly as live).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Final

import duckdb

from agents.features import WINDOW
from agents.timestamps import to_micros
from schemas.events import BarClosed, Event, FeaturesComputed, OrderFilled, SignalRaised, SizeDecided, TradeClosed
from trainer.warehouse import TABLE_FOR_EVENT

KIND_RANK: Final[dict[type[Event], int]] = {BarClosed: 0, OrderFilled: 1, TradeClosed: 1, SignalRaised: 2}


@dataclass(frozen=True, slots=True, eq=False)
class History:
    events: tuple[BarClosed | TradeClosed | SignalRaised, ...]
    decisions: Mapping[str, SizeDecided]
    features: Mapping[str, FeaturesComputed]
    window_ids: frozenset[str]
    start: datetime
    end: datetime


def _naive_utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValueError(f"window bounds must be timezone-aware, got {ts!r}")
    return ts.astimezone(timezone.utc).replace(tzinfo=None)


def _to_event(event_type: type[Event], names: tuple[str, ...], row: tuple[Any, ...]) -> Event:
    values: dict[str, Any] = {}
    for name, value in zip(names, row):
        if isinstance(value, datetime):
            value = value.replace(tzinfo=timezone.utc)
        if value is None:
            continue  # the dataclass default (None or an empty map) applies
        values[name] = value
    return event_type(**values)


def select_events(con: duckdb.DuckDBPyConnection, event_type: type[Event], where: str, params: list[Any]) -> list[tuple[Event, int, int]]:
    spec = TABLE_FOR_EVENT[event_type]
    cols = ", ".join(f'"{n}"' for n in spec.field_names)
    rows = con.execute(f"SELECT {cols}, _partition, _offset FROM {spec.reader} {where}", params).fetchall()
    n = len(spec.field_names)
    return [(_to_event(event_type, spec.field_names, r[:n]), int(r[n]), int(r[n + 1])) for r in rows]


def _first_by_signal(items: list[tuple[Event, int, int]]) -> dict[str, Any]:
    """The first recorded event per signal_id (by ts_event, ts_init, event_id, as trainer.dataset)."""
    out: dict[str, Any] = {}
    for event, _, _ in sorted(items, key=lambda x: (x[0].ts_event, x[0].ts_init, x[0].event_id)):
        out.setdefault(event.signal_id, event)  # type: ignore[attr-defined]
    return out


def replay_key(event: Event, partition: int, offset: int) -> tuple[int, int, int, int]:
    return (to_micros(event.ts_event), KIND_RANK[type(event)], partition, offset)


def load_history(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, *, symbols: tuple[str, ...] | None = None) -> History:
    """The events a backtest of ``[start, end)`` replays (see the module doc)."""
    if not start < end:
        raise ValueError(f"empty window: from {start.isoformat()} is not before to {end.isoformat()}")
    s, e = _naive_utc(start), _naive_utc(end)
    sym_filter, sym_params = ("", []) if symbols is None else (" AND symbol IN (SELECT unnest(?))", [list(symbols)])
    bars = select_events(
        con, BarClosed,
        f"""WHERE event_id IN (
              SELECT event_id FROM (
                SELECT event_id, ts_event,
                       row_number() OVER (PARTITION BY symbol ORDER BY ts_event DESC, event_id) AS back
                FROM bars WHERE ts_event < ?{sym_filter}
              ) WHERE back <= ?
              UNION ALL SELECT event_id FROM bars WHERE ts_event >= ? AND ts_event < ?{sym_filter}
            )""",
        [s, *sym_params, WINDOW, s, e, *sym_params],
    )
    # a bar stored twice under two event_ids is one bar to the worker (it rejects the duplicate)
    outcomes = select_events(con, TradeClosed, f"WHERE ts_event < ?{sym_filter}", [e, *sym_params])
    signals = select_events(con, SignalRaised, f"WHERE ts_event < ?{sym_filter}", [e, *sym_params])
    decisions = _first_by_signal(select_events(con, SizeDecided, f"WHERE ts_event < ?{sym_filter}", [e, *sym_params]))
    features = _first_by_signal(select_events(con, FeaturesComputed, f"WHERE ts_event >= ? AND ts_event < ?{sym_filter}", [s, e, *sym_params]))
    ordered = sorted((*bars, *outcomes, *signals), key=lambda x: replay_key(*x))
    window_ids = frozenset(
        ev.signal_id for ev, _, _ in signals if start <= ev.ts_event < end  # type: ignore[union-attr]
    )
    return History(
        events=tuple(ev for ev, _, _ in ordered),  # type: ignore[misc]
        decisions=MappingProxyType(decisions),
        features=MappingProxyType(features),
        window_ids=window_ids,
        start=start,
        end=end,
    )
