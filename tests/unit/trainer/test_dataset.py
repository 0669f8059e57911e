"""Point-in-time dataset: no row uses anything stamped after its decision; derived columns are right."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from schemas.events import Event, FeaturesComputed, SignalRaised, SizeDecided, TradeClosed
from trainer.warehouse.dataset import cost_in_r, episode_ids, load_dataset
from trainer.warehouse.feature_layouts import layout_matrix, split_maps
from trainer.warehouse.store import TABLE_FOR_EVENT, Warehouse

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def store(wh: Warehouse, events: Sequence[Event]) -> None:
    by_spec: dict = {}
    for i, e in enumerate(events):
        by_spec.setdefault(TABLE_FOR_EVENT[type(e)], ([], []))
        by_spec[TABLE_FOR_EVENT[type(e)]][0].append(e)
        by_spec[TABLE_FOR_EVENT[type(e)]][1].append(("test", 0, i))
    wh.write({spec: spec.to_arrow(evs, src) for spec, (evs, src) in by_spec.items()}, {})


def signal(sid: str, ts: datetime, *, stop: float | None = 98.0, atr: float = 2.0) -> SignalRaised:
    return SignalRaised(
        signal_id=sid,
        strategy_id="S4",
        symbol="BTCUSDT",
        side="BUY",
        price=100.0,
        atr=atr,
        base_qty=2,
        stop_price=stop,
        ts_event=ts,
    )


def features(
    sid: str,
    ts: datetime,
    tag: float,
    *,
    ts_init: datetime | None = None,
    family: str = "MeanReversion",
    **extra: float,
) -> FeaturesComputed:
    return FeaturesComputed(
        signal_id=sid,
        symbol="BTCUSDT",
        strategy_id="S4",
        strategy_type=family,
        feature_set="v1",
        features={"tag": tag, **extra},
        ts_event=ts,
        ts_init=ts_init or ts,
    )


def decision(sid: str, ts: datetime, multiplier: float = 1.0) -> SizeDecided:
    return SizeDecided(
        signal_id=sid,
        symbol="BTCUSDT",
        strategy_id="S4",
        multiplier=multiplier,
        qty=2 * multiplier,
        policy="RULES",
        reason="t",
        latency_us=90,
        ts_event=ts,
    )


def outcome(sid: str, ts: datetime, r: float, *, fees: float = 0.4, qty: float = 2.0) -> TradeClosed:
    entry_ts = ts - timedelta(minutes=1)
    return TradeClosed(
        signal_id=sid,
        symbol="BTCUSDT",
        strategy_id="S4",
        side="BUY",
        qty=qty,
        entry_price=100.0,
        exit_price=100 + 2 * r,
        entry_ts=entry_ts,
        exit_ts=ts,
        pnl=2 * r * qty,
        fees=fees,
        r_multiple=r,
        exit_reason="x",
        ts_event=ts,
    )


def test_rows_use_only_what_was_known_at_the_decision(warehouse: Warehouse) -> None:
    t = T0
    store(
        warehouse,
        [
            signal("a", t),
            decision("a", t, 1.5),
            features("a", t, tag=1.0),  # what the live path used
            features("a", t + timedelta(minutes=1), tag=666.0),  # stamped after the decision: a leak
            features("a", t, tag=555.0, ts_init=t + timedelta(hours=3)),  # recomputed later: not what was used
            outcome("a", t, r=-9.0),  # not after the signal: not its outcome
            outcome("a", t + timedelta(minutes=30), r=2.0),
            outcome("a", t + timedelta(hours=2), r=-1.0),  # a second close: the first one counts
            signal("b", t + timedelta(minutes=2)),
            decision("b", t + timedelta(minutes=2)),
            features("b", t + timedelta(minutes=2), tag=2.0),  # no outcome: no row
            signal("c", t - timedelta(minutes=5)),
            decision("c", t - timedelta(minutes=5), 0.5),
            features("c", t - timedelta(minutes=4), tag=777.0),  # only features after the decision
            outcome("c", t + timedelta(minutes=1), r=1.0),
        ],
    )

    ds = load_dataset(warehouse.con)

    assert list(ds.signal_id) == ["a"]
    assert ds.features[0, ds.feature_names.index("tag")] == 1.0
    assert ds.r_multiple.tolist() == [2.0]
    assert ds.multiplier.tolist() == [1.5]
    assert ds.ts[0] == np.datetime64(t.replace(tzinfo=None), "us")


@hyp_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3000),  # decision minute
            st.lists(
                st.tuples(st.integers(-30, 30), st.integers(0, 5)), min_size=0, max_size=4
            ),  # features: ts offset, ts_init delay
            st.lists(st.integers(-30, 300), min_size=0, max_size=3),  # outcome offsets (minutes)
        ),
        min_size=1,
        max_size=12,
    )
)
def test_the_join_matches_a_brute_force_point_in_time_reference(warehouse: Warehouse, plan: list) -> None:
    warehouse.con.execute("DELETE FROM signals; DELETE FROM features; DELETE FROM decisions; DELETE FROM outcomes")
    events: list[Event] = []
    expected: dict[str, tuple[float, float]] = {}
    tag = 0.0
    for i, (minute, feats, outs) in enumerate(plan):
        sid, ts = f"s{i}", T0 + timedelta(minutes=minute)
        events += [signal(sid, ts), decision(sid, ts)]
        candidates = []
        for offset, delay in feats:
            tag += 1
            fts = ts + timedelta(minutes=offset)
            events.append(features(sid, fts, tag=tag, ts_init=fts + timedelta(seconds=delay)))
            if fts <= ts:  # latest ts_event, then earliest ts_init, then event_id
                candidates.append((-(fts.timestamp()), fts.timestamp() + delay, events[-1].event_id, tag))
        closes = []
        for j, offset in enumerate(outs):
            ots = ts + timedelta(minutes=offset, seconds=j)
            events.append(outcome(sid, ots, r=float(i * 10 + j)))
            if ots > ts:
                closes.append((ots, float(i * 10 + j)))
        if candidates and closes:
            expected[sid] = (min(candidates)[3], min(closes)[1])
    store(warehouse, events)

    ds = load_dataset(warehouse.con, feature_names=["tag"])

    got = {sid: (float(f[0]), r) for sid, f, r in zip(ds.signal_id, ds.features, ds.r_multiple, strict=True)}
    assert got == expected
    assert np.all(np.diff(ds.ts.astype(np.int64)) >= 0)


def test_cost_in_r_uses_the_stop_distance_then_the_atr() -> None:
    fees = np.array([0.4, 0.4, 0.4, 0.4])
    qty = np.array([2.0, 2.0, 2.0, 2.0])
    entry = np.array([100.0, 100.0, 100.0, 100.0])
    stop = np.array([98.0, np.nan, 100.0, np.nan])
    atr = np.array([5.0, 4.0, 1.0, 0.0])
    cost = cost_in_r(fees, qty, entry, stop, atr)
    assert cost[:3].tolist() == [0.4 / (2 * 2), 0.4 / (4 * 2), 0.4 / (1 * 2)]
    assert math.isnan(cost[3])


def test_rows_without_a_risk_unit_are_dropped_and_cost_comes_from_the_signal(warehouse: Warehouse) -> None:
    t = T0
    store(
        warehouse,
        [
            signal("stop", t, stop=99.0),
            decision("stop", t),
            features("stop", t, 1.0),
            outcome("stop", t + timedelta(minutes=9), 1.0, fees=0.5, qty=2.0),
            signal("atr", t + timedelta(minutes=1), stop=None, atr=0.5),
            decision("atr", t + timedelta(minutes=1)),
            features("atr", t + timedelta(minutes=1), 2.0),
            outcome("atr", t + timedelta(minutes=9), 1.0, fees=0.5, qty=2.0),
            signal("none", t + timedelta(minutes=2), stop=None, atr=0.0),
            decision("none", t + timedelta(minutes=2)),
            features("none", t + timedelta(minutes=2), 3.0),
            outcome("none", t + timedelta(minutes=9), 1.0),
        ],
    )
    ds = load_dataset(warehouse.con)
    assert list(ds.signal_id) == ["stop", "atr"]
    assert ds.cost_r.tolist() == pytest.approx([0.5 / (1.0 * 2), 0.5 / (0.5 * 2)])


def test_episodes_are_utc_sessions() -> None:
    ts = np.array(
        ["2024-05-06T23:59:59", "2024-05-07T00:00:00", "2024-05-07T13:00:00", "2024-05-09T01:00:00"],
        dtype="datetime64[us]",
    )
    assert episode_ids(ts).tolist() == [0, 1, 1, 2]


def test_feature_matrix_follows_the_given_names_and_marks_missing_as_nan() -> None:
    maps = pa.array([[("b", 2.0), ("a", 1.0)], [("c", 3.0)], [], None], pa.map_(pa.string(), pa.float64()))
    split = split_maps(maps)
    names, m = layout_matrix(split.layout, split.values, split.layouts)
    assert names == ("a", "b", "c")
    np.testing.assert_array_equal(
        m, np.array([[1, 2, np.nan], [np.nan, np.nan, 3], [np.nan] * 3, [np.nan] * 3], dtype=np.float32)
    )
    names, m = layout_matrix(split.layout.slice(1), split.values.slice(1), split.layouts, ["c", "a"])
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m, np.array([[3, np.nan], [np.nan, np.nan], [np.nan, np.nan]], dtype=np.float32))


def test_rows_with_other_names_or_orders_keep_their_own_values(warehouse: Warehouse) -> None:
    """One feature set, rows with different name lists and orders: each value lands under its own name."""
    t = T0
    store(
        warehouse,
        [
            signal("a", t),
            decision("a", t),
            features("a", t, tag=1.0, x=10.0),
            outcome("a", t + timedelta(minutes=5), 1.0),
            signal("b", t + timedelta(minutes=1)),
            decision("b", t + timedelta(minutes=1)),
            FeaturesComputed(
                signal_id="b",
                symbol="BTCUSDT",
                strategy_id="S4",
                strategy_type="MeanReversion",
                feature_set="v1",
                features={"x": 20.0, "tag": 2.0},
                ts_event=t + timedelta(minutes=1),
            ),
            outcome("b", t + timedelta(minutes=6), 1.0),
            signal("c", t + timedelta(minutes=2)),
            decision("c", t + timedelta(minutes=2)),
            features("c", t + timedelta(minutes=2), tag=3.0, y=-1.0),
            outcome("c", t + timedelta(minutes=7), 1.0),
        ],
    )
    ds = load_dataset(warehouse.con)
    assert ds.feature_names == ("tag", "x", "y")
    np.testing.assert_array_equal(
        ds.features, np.array([[1, 10, np.nan], [2, 20, np.nan], [3, np.nan, -1]], dtype=np.float32)
    )
    assert warehouse.count("feature_layouts") == 3


def test_window_is_half_open_and_keeps_families_and_episodes(warehouse: Warehouse) -> None:
    events: list[Event] = []
    for i in range(6):
        ts = T0 + timedelta(hours=8 * i)
        sid = f"w{i}"
        family = ("Breakout", "Momentum")[i % 2]
        events += [
            signal(sid, ts),
            decision(sid, ts),
            features(sid, ts, float(i), family=family, z=0.5 * i),
            outcome(sid, ts + timedelta(hours=1), 0.1 * i),
        ]
    store(warehouse, events)
    ds = load_dataset(warehouse.con)
    assert ds.feature_names == ("tag", "z")
    assert ds.features.dtype == np.float32 and ds.features.shape == (6, 2)
    assert list(ds.family) == ["Breakout", "Momentum"] * 3
    assert ds.episode_id.tolist() == [0, 0, 1, 1, 1, 2]  # 09:00 17:00 | 01:00 09:00 17:00 | 01:00 (UTC dates)
    cet = timezone(timedelta(hours=2))
    part = ds.window((T0 + timedelta(hours=8)).astimezone(cet), T0 + timedelta(hours=24))
    assert list(part.signal_id) == ["w1", "w2"]
    assert part.episode_id.tolist() == [0, 1]  # ids of the full set, not renumbered
    direct = load_dataset(warehouse.con, from_ts=T0 + timedelta(hours=8), to_ts=T0 + timedelta(hours=24))
    assert list(direct.signal_id) == ["w1", "w2"]
