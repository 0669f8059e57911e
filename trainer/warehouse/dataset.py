"""Point-in-time training rows from the warehouse: what was known at each decision, and its outcome.

One row per decided signal that has an outcome:

- **decision**: the first ``SizeDecided`` of the signal (``ts_event`` is the
  signal's ``ts_event``; it is the row's time ``ts``), giving the logged
  multiplier and policy.
- **signal**: its ``SignalRaised`` with ``ts_event <= ts`` (stop price, ATR).
- **features**: among the signal's ``FeaturesComputed`` with ``ts_event <= ts``
  (never one stamped later), the latest by ``ts_event``; among equal ``ts_event``
  the first created (lowest ``ts_init``, then ``event_id`` for a stable order), i.e. what the live path computed before
  deciding, not a later recomputation. ``feature_set=`` selects one version.
- **outcome**: the first ``TradeClosed`` of the signal with ``ts_event > ts``; it is
  only the label (``r_multiple``, fees) and never feeds a feature.

Derived columns:

- ``episode_id``: one episode per trading session = the UTC calendar date of the
  signal, all symbols and strategies together (the book's risk is per session);
  ids are 0, 1, ... in date order.
- ``family``: ``FeaturesComputed.strategy_type``.
- ``cost_r``: fees in R, ``fees / (|entry - stop| * qty)`` when the signal had a stop
  distinct from the entry, else ``fees / (atr * qty)``. Rows where neither gives a
  positive risk unit are dropped (and logged): their R is undefined.
- ``r_multiple``: from ``TradeClosed``; the size multiplier scales pnl and risk alike,
  so R does not depend on it.
- ``features``: float32 ``[n, d]`` in ``feature_names`` order (sorted union of the
  names present, or the list given); a name missing from a row's map is NaN. Built
  from the stored value lists and their layouts (``trainer.warehouse.feature_layouts``), no
  maps are materialised.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from agents.timestamps import utc64
from trainer.warehouse.feature_layouts import layout_matrix

log = logging.getLogger(__name__)

_ROWS_SQL = """
WITH d AS (
    SELECT signal_id, ts_event AS ts, multiplier, policy,
           row_number() OVER (PARTITION BY signal_id ORDER BY ts_event, ts_init, event_id) AS rn
    FROM decisions
), first_d AS (SELECT * FROM d WHERE rn = 1),
s AS (
    SELECT s.signal_id, s.stop_price, s.atr,
           row_number() OVER (PARTITION BY s.signal_id ORDER BY s.ts_event, s.ts_init, s.event_id) AS rn
    FROM signals s JOIN first_d d USING (signal_id)
    WHERE s.ts_event <= d.ts
), f AS (
    SELECT f.signal_id, f.strategy_type, f.feature_layout, f.feature_values,
           row_number() OVER (PARTITION BY f.signal_id ORDER BY f.ts_event DESC, f.ts_init, f.event_id) AS rn
    FROM features f JOIN first_d d USING (signal_id)
    WHERE f.ts_event <= d.ts AND ($feature_set IS NULL OR f.feature_set = $feature_set)
), o AS (
    SELECT o.signal_id, o.r_multiple, o.fees, o.qty, o.entry_price,
           row_number() OVER (PARTITION BY o.signal_id ORDER BY o.ts_event, o.ts_init, o.event_id) AS rn
    FROM outcomes o JOIN first_d d USING (signal_id)
    WHERE o.ts_event > d.ts
)
SELECT d.signal_id, d.ts, d.multiplier, d.policy, f.strategy_type AS family, f.feature_layout, f.feature_values,
       o.r_multiple, o.fees, o.qty, o.entry_price, s.stop_price, s.atr
FROM first_d d
JOIN s ON s.signal_id = d.signal_id AND s.rn = 1
JOIN f ON f.signal_id = d.signal_id AND f.rn = 1
JOIN o ON o.signal_id = d.signal_id AND o.rn = 1
WHERE ($from_ts IS NULL OR d.ts >= $from_ts) AND ($to_ts IS NULL OR d.ts < $to_ts)
ORDER BY d.ts, d.signal_id
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingSet:
    """Column arrays of equal length ``n``, ordered by ``ts`` (then ``signal_id``)."""

    feature_names: tuple[str, ...]
    features: np.ndarray  # float32 [n, d]
    r_multiple: np.ndarray  # float64 [n]
    cost_r: np.ndarray  # float64 [n]
    episode_id: np.ndarray  # int64 [n]
    family: np.ndarray  # str [n]
    ts: np.ndarray  # datetime64[us] [n], UTC
    signal_id: np.ndarray  # str [n]
    multiplier: np.ndarray  # float64 [n], the logged decision
    policy: np.ndarray  # str [n], the logged policy

    def __post_init__(self) -> None:
        n = len(self.ts)
        if self.features.shape != (n, len(self.feature_names)):
            raise ValueError(f"features shape {self.features.shape} != ({n}, {len(self.feature_names)})")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and len(value) != n:
                raise ValueError(f"{f.name} has {len(value)} rows, ts has {n}")

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray) -> TrainingSet:
        """Rows selected by a boolean mask or an index array (order preserved as given)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return TrainingSet(**{k: (v[index] if isinstance(v, np.ndarray) else v) for k, v in values.items()})

    def window(
        self, from_ts: datetime | np.datetime64 | None = None, to_ts: datetime | np.datetime64 | None = None
    ) -> TrainingSet:
        """Rows with ``from_ts <= ts < to_ts`` (aware datetimes are taken in UTC)."""
        mask = np.ones(len(self), dtype=bool)
        if from_ts is not None:
            mask &= self.ts >= utc64(from_ts)
        if to_ts is not None:
            mask &= self.ts < utc64(to_ts)
        return self.take(mask)


def cost_in_r(fees: np.ndarray, qty: np.ndarray, entry: np.ndarray, stop: np.ndarray, atr: np.ndarray) -> np.ndarray:
    """Fees in R: per-unit risk is ``|entry - stop|`` if the stop is known (not NaN) and
    distinct from the entry, else ``atr``; NaN where that risk is not positive."""
    distance = np.abs(entry - stop)
    risk = np.where(np.isfinite(distance) & (distance > 0), distance, atr)
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = fees / (risk * qty)
    return np.where(np.isfinite(risk) & (risk > 0) & (qty > 0), cost, np.nan)


def episode_ids(ts: np.ndarray) -> np.ndarray:
    """Session index per row: the UTC date of ``ts``, numbered 0.. in date order."""
    days = ts.astype("datetime64[D]")
    _, inverse = np.unique(days, return_inverse=True)
    return inverse.astype(np.int64).reshape(-1)


def _strings(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_pylist(), dtype=str)


def _floats(table: pa.Table, name: str) -> np.ndarray:
    values: npt.NDArray[np.float64] = pc.fill_null(table.column(name).cast(pa.float64()), np.nan).to_numpy()
    return values


def _read(con: duckdb.DuckDBPyConnection, params: dict[str, object]) -> tuple[pa.Table, dict[str, tuple[str, ...]]]:
    """The point-in-time rows, then the feature layouts: layouts are only ever added, in the
    transaction of the first row using them, so a later read holds every layout the rows name."""
    table = con.sql(_ROWS_SQL, params=params).to_arrow_table()
    layouts = {key: tuple(names) for key, names in con.execute("SELECT layout, names FROM feature_layouts").fetchall()}
    return table, layouts


def load_dataset(
    warehouse: Path | str | duckdb.DuckDBPyConnection,
    *,
    feature_names: Sequence[str] | None = None,
    feature_set: str | None = None,
    from_ts: datetime | None = None,
    to_ts: datetime | None = None,
) -> TrainingSet:
    """The point-in-time training set of the warehouse (a path opened read-only, or a connection)."""
    params = {
        "feature_set": feature_set,
        "from_ts": None if from_ts is None else utc64(from_ts).astype(datetime),
        "to_ts": None if to_ts is None else utc64(to_ts).astype(datetime),
    }
    if isinstance(warehouse, duckdb.DuckDBPyConnection):
        table, layouts = _read(warehouse, params)
    else:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            table, layouts = _read(con, params)
    cost = cost_in_r(
        _floats(table, "fees"),
        _floats(table, "qty"),
        _floats(table, "entry_price"),
        _floats(table, "stop_price"),
        _floats(table, "atr"),
    )
    keep = np.isfinite(cost)
    if not keep.all():
        log.warning(
            "dropped %d of %d rows whose risk unit (stop distance or ATR) is not positive",
            int((~keep).sum()),
            len(keep),
        )
        table = table.filter(pa.array(keep))
        cost = cost[keep]
    names, matrix = layout_matrix(
        table.column("feature_layout"), table.column("feature_values"), layouts, feature_names
    )
    ts = table.column("ts").to_numpy().astype("datetime64[us]")
    return TrainingSet(
        feature_names=names,
        features=matrix,
        r_multiple=_floats(table, "r_multiple"),
        cost_r=cost,
        episode_id=episode_ids(ts),
        family=_strings(table, "family"),
        ts=ts,
        signal_id=_strings(table, "signal_id"),
        multiplier=_floats(table, "multiplier"),
        policy=_strings(table, "policy"),
    )
