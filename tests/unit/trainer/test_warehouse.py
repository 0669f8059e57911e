"""Warehouse layout: features stored by layout read back exactly, idempotently; old schema versions are rebuilt."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from schemas.events import Event, FeaturesComputed
from trainer.backtest.events import select_events
from trainer.warehouse.feature_layouts import LayoutError, layout_id, layout_matrix, split_maps
from trainer.warehouse.store import (
    ROW_GROUP_ROWS,
    SCHEMA_VERSION,
    TABLE_FOR_EVENT,
    Warehouse,
    WarehouseError,
    open_warehouse,
)

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
SPEC = TABLE_FOR_EVENT[FeaturesComputed]


def feats(sid: str, values: dict[str, float], minute: int = 0) -> FeaturesComputed:
    ts = T0 + timedelta(minutes=minute)
    return FeaturesComputed(
        signal_id=sid,
        symbol="X",
        strategy_id="S1",
        strategy_type="EmaCross",
        feature_set="fs1",
        features=values,
        ts_event=ts,
    )


def write(wh: Warehouse, events: Sequence[Event]) -> tuple[int, int]:
    result = wh.write({SPEC: SPEC.to_arrow(events, [("t", 0, i) for i in range(len(events))])}, {})
    return result.new_rows, result.duplicates


MAPS = [
    {"b": 2.0, "a": -1.5, "c": 1e-300},
    {"b": 3.0, "a": 0.0, "c": -0.0},  # same names, same order: one layout
    {"a": 4.0, "b": 5.0, "c": 6.0},  # same names, other order: its own layout, read back in its order
    {},
    {"é\u2028": 7.0, "": 8.0},
]


def test_features_read_back_exactly_as_recorded(warehouse: Warehouse) -> None:
    events = [feats(f"s{i}", m, i) for i, m in enumerate(MAPS)]
    assert write(warehouse, events) == (len(events), 0)

    back = {e.signal_id: e for e, _, _ in select_events(warehouse.con, FeaturesComputed, "", [])}
    for event in events:
        assert back[event.signal_id] == event
        assert list(back[event.signal_id].features) == list(event.features)  # names in recorded order
    assert warehouse.count("feature_layouts") == 4
    by_sql = warehouse.con.execute(
        "SELECT signal_id, features['b'] FROM features_by_name WHERE signal_id IN ('s0', 's2') ORDER BY 1"
    ).fetchall()
    assert by_sql == [("s0", 2.0), ("s2", 5.0)]
    by_index = warehouse.con.execute(
        "SELECT f.feature_values[list_position(l.names, 'a')] FROM features f JOIN feature_layouts l ON l.layout = f.feature_layout WHERE signal_id = 's2'"
    ).fetchone()
    assert by_index == (4.0,)


def test_batch_decoded_maps_split_like_event_maps() -> None:
    """The replay's path (Arrow MapArray, possibly sliced) gives the same layouts and values as events do."""
    maps = pa.array([list(m.items()) for m in MAPS] + [None], pa.map_(pa.string(), pa.float64()))
    for part in (maps, maps.slice(2), maps.slice(1, 3)):
        split = split_maps(part)
        rows = part.to_pylist()
        assert split.layout.to_pylist() == [None if r is None else layout_id([k for k, _ in r]) for r in rows]
        assert split.values.to_pylist() == [None if r is None else [v for _, v in r] for r in rows]
        assert all(split.layouts[layout_id(names)] == names for names in split.layouts.values())


def test_writes_are_idempotent_and_layouts_stored_once(warehouse: Warehouse) -> None:
    events = [feats(f"s{i}", {"x": float(i), "y": 1.0}, i) for i in range(5)]
    assert write(warehouse, events) == (5, 0)
    assert write(warehouse, [*events[2:], feats("new", {"x": 9.0, "y": 9.0})]) == (1, 3)
    assert warehouse.count("features") == 6
    assert warehouse.con.execute("SELECT layout, names FROM feature_layouts").fetchall() == [
        (layout_id(["x", "y"]), ["x", "y"])
    ]


def test_a_layout_id_stored_for_other_names_fails_the_write(warehouse: Warehouse) -> None:
    warehouse.con.execute("INSERT INTO feature_layouts VALUES (?, ['not', 'these'])", [layout_id(["x"])])
    with pytest.raises(WarehouseError, match="hash collision"):
        write(warehouse, [feats("s", {"x": 1.0})])
    assert warehouse.count("features") == 0  # rolled back with it


def test_layout_matrix_refuses_rows_that_do_not_fit_their_layout() -> None:
    layout = pa.array([layout_id(["a", "b"])])
    with pytest.raises(LayoutError, match="unknown"):
        layout_matrix(layout, pa.array([[1.0, 2.0]]), {})
    with pytest.raises(LayoutError, match="2 values"):
        layout_matrix(layout, pa.array([[1.0]]), {layout_id(["a", "b"]): ("a", "b")})
    names, m = layout_matrix(layout, pa.array([[1.0, None]]), {layout_id(["a", "b"]): ("a", "b")}, ["b", "a", "z"])
    assert names == ("b", "a", "z") and math.isnan(m[0, 0]) and m[0, 1] == 1.0 and math.isnan(m[0, 2])


def _version_1_file(path: Path) -> None:
    """A warehouse as the previous code wrote it: features as a MAP column, schema version 1."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
    con.execute("INSERT INTO meta VALUES ('state', 'ready'), ('schema_version', '1')")
    con.execute("CREATE TABLE features (event_id VARCHAR PRIMARY KEY, features MAP(VARCHAR, DOUBLE))")
    con.execute("INSERT INTO features VALUES ('e1', MAP(['a'], [1.0]))")
    con.execute(
        "CREATE TABLE offsets (topic VARCHAR, partition INTEGER, next_offset BIGINT NOT NULL, PRIMARY KEY (topic, partition))"
    )
    con.execute("INSERT INTO offsets VALUES ('rlsizer.features', 0, 1)")
    con.close()


def test_a_previous_schema_version_is_moved_aside_and_rebuilt_empty(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    _version_1_file(path)
    with open_warehouse(path) as wh:
        assert wh.rebuilt_from is not None and "schema version '1'" in wh.rebuilt_from
        assert wh.offsets() == {}  # the replay starts from the beginning of every topic
        assert wh.count("features") == 0
        columns = [r[0] for r in wh.con.execute("DESCRIBE features").fetchall()]
        assert "feature_values" in columns and "features" not in columns
        assert wh.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (SCHEMA_VERSION,)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("wh.duckdb.bad-")]
    with open_warehouse(path) as again:
        assert again.rebuilt_from is None


def test_layout_matrix_matches_a_plain_dict_scatter() -> None:
    rng = np.random.default_rng(7)
    names = [f"f{i}" for i in range(6)]
    rows = []
    for _ in range(40):
        chosen = list(rng.permutation(names)[: rng.integers(0, 7)])
        rows.append({n: float(rng.normal()) for n in chosen})
    split = split_maps(pa.array([list(r.items()) for r in rows], pa.map_(pa.string(), pa.float64())))
    got_names, m = layout_matrix(split.layout, split.values, split.layouts, names)
    want = np.array([[r.get(n, np.nan) for n in names] for r in rows], dtype=np.float32)
    assert got_names == tuple(names)
    np.testing.assert_array_equal(m, want)


def _sources(wh: Warehouse) -> list[tuple[str, int]]:
    return wh.con.execute("SELECT signal_id, _offset FROM features ORDER BY signal_id").fetchall()


def test_a_bulk_load_stores_each_event_once_keeping_the_first_copy(tmp_path: Path) -> None:
    events = [feats(f"s{i}", {"x": float(i)}, i) for i in range(4)]
    with open_warehouse(tmp_path / "wh.duckdb", bulk_load=True) as wh:
        assert wh.loading
        # Repeats across batches and within one: appended while loading, removed by finish_load.
        first = wh.write({SPEC: SPEC.to_arrow(events[:3], [("t", 0, i) for i in range(3)])}, {("t", 0): 3})
        second = wh.write(
            {SPEC: SPEC.to_arrow([events[1], events[3], events[3]], [("t", 0, i) for i in (3, 4, 5)])}, {("t", 0): 6}
        )
        assert (first.new_rows, second.new_rows) == (3, 3)
        assert wh.finish_load() == 2
        assert not wh.loading and wh.finish_load() == 0
        assert _sources(wh) == [("s0", 0), ("s1", 1), ("s2", 2), ("s3", 4)]  # the copy stored first
        assert write(wh, [*events[2:], feats("new", {"x": 9.0})]) == (1, 2)  # ready: only new event_ids are inserted
        assert wh.count("features") == 5
        assert wh.offsets() == {("t", 0): 6}


def test_a_write_keeps_the_first_copy_of_an_event_repeated_in_its_batch(warehouse: Warehouse) -> None:
    events = [feats(f"s{i}", {"x": float(i)}, i) for i in range(3)]
    batch = [events[0], events[1], events[0], events[2], events[1]]
    result = warehouse.write({SPEC: SPEC.to_arrow(batch, [("t", 0, i) for i in range(len(batch))])}, {})
    assert (result.new_rows, result.duplicates) == (3, 2)
    assert _sources(warehouse) == [("s0", 0), ("s1", 1), ("s2", 3)]
    assert write(warehouse, [events[2], events[2]]) == (0, 2)


def test_event_tables_have_no_index_and_earlier_files_with_one_still_write_once(tmp_path: Path) -> None:
    """Idempotence comes from the anti-join, not an index; a version-2 file with the old unique index works the same."""
    path = tmp_path / "wh.duckdb"
    events = [feats(f"s{i}", {"x": float(i)}, i) for i in range(3)]
    with open_warehouse(path) as wh:
        assert wh.con.execute("SELECT count(*) FROM duckdb_indexes() WHERE table_name = 'features'").fetchone() == (0,)
        wh.con.execute("CREATE UNIQUE INDEX features_event_id ON features (event_id)")  # as earlier code made it
    with open_warehouse(path) as wh:
        assert write(wh, events[:2] + events[:1]) == (2, 1)
        assert write(wh, events) == (1, 2)
        assert _sources(wh) == [("s0", 0), ("s1", 1), ("s2", 2)]


def test_appends_of_a_row_group_or_more_are_stored_in_row_groups_of_row_group_rows(tmp_path: Path) -> None:
    """The file is attached with small row groups, so a replay's flushes are written straight into it (see "Row groups")."""
    n = 2 * ROW_GROUP_ROWS + 100
    events = [feats(f"s{i}", {"x": float(i)}, i) for i in range(n)]
    with open_warehouse(tmp_path / "wh.duckdb", bulk_load=True) as wh:
        wh.write({SPEC: SPEC.to_arrow(events, [("t", 0, i) for i in range(n)])}, {("t", 0): n})
        groups = wh.con.execute(
            "SELECT row_group_id, max(start + count) - min(start) FROM pragma_storage_info('features') GROUP BY ALL"
        ).fetchall()
    assert len(groups) >= 3 and max(rows for _, rows in groups) <= ROW_GROUP_ROWS
    with open_warehouse(tmp_path / "wh.duckdb") as reopened:
        assert reopened.count("features") == n


def test_a_load_left_unfinished_is_finished_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    events = [feats(f"s{i}", {"x": float(i)}, i) for i in range(3)]
    wh = open_warehouse(path, bulk_load=True)
    wh.write({SPEC: SPEC.to_arrow(events + events[:1], [("t", 0, i) for i in range(4)])}, {("t", 0): 4})
    wh.close()  # a crash before finish_load: rows and offsets committed, the repeat still stored

    for bulk_load in (True, False):  # a replay (bulk_load) reopening it goes on from a finished file
        with open_warehouse(path, bulk_load=bulk_load) as reopened:
            assert reopened.rebuilt_from is None and not reopened.loading
            assert _sources(reopened) == [("s0", 0), ("s1", 1), ("s2", 2)]
            assert reopened.offsets() == {("t", 0): 4}
            assert write(reopened, events) == (0, 3)
    assert duckdb.connect(str(path)).execute("SELECT value FROM meta WHERE key = 'state'").fetchone() == ("ready",)


def _maps(rows: Sequence[Sequence[tuple[str, float]]]) -> pa.MapArray:
    return pa.array([list(r) for r in rows], pa.map_(pa.string(), pa.float64()))


@pytest.mark.parametrize(
    "maps",
    [
        _maps([[("a", 1.0), ("bé", 2.0)]] * 5),  # one layout: the byte-compared path
        _maps([[("a", 1.0), ("bé", 2.0)]] * 5).slice(1, 3),
        _maps([[("a", 1.0), ("bb", 2.0)], [("a", 3.0), ("bc", 4.0)], [("a", 5.0), ("bb", 6.0)]]),  # one byte differs
        _maps([[("ab", 1.0)], [("a", 2.0)], [("ab", 3.0)]]),  # same bytes overall, other boundaries
        _maps([[("a", 1.0), ("b", 2.0)], [("b", 3.0), ("a", 4.0)]]),  # same names, other order
        _maps(
            [[("a", 1.0), ("a", 2.0), ("b", 3.0), ("b", 4.0)], [], [("a", 5.0), ("b", 6.0)]]
        ),  # names repeat, lengths differ
        _maps([[], []]),
    ],
)
def test_split_maps_gives_the_same_parts_with_or_without_the_shared_layout_shortcut(
    maps: pa.MapArray, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = split_maps(maps)
    monkeypatch.setattr("trainer.warehouse.feature_layouts._shared_names", lambda *_: None)
    slow = split_maps(maps)
    assert fast.layout.equals(slow.layout) and fast.values.equals(slow.values) and fast.layouts == slow.layouts
    rows = maps.to_pylist()
    assert fast.layout.to_pylist() == [layout_id([k for k, _ in r]) for r in rows]


@pytest.mark.parametrize(
    "maps",
    [
        _maps([[("a", 1.0), ("bé", 2.0)]] * 40),
        _maps([[("a", 1.0), ("bé", 2.0)]] * 40).slice(3, 30),
        _maps([[("a", 1.0), ("bb", 2.0)]] * 39 + [[("a", 3.0), ("bc", 4.0)]]),  # a byte of the last map differs
        _maps([[("ab", 1.0), ("c", 2.0)]] * 39 + [[("a", 3.0), ("bc", 4.0)]]),  # its bytes agree, its boundaries do not
    ],
)
@pytest.mark.parametrize("block_bytes", [1, 24, 1 << 20])  # a block of one row, of a few, of every row
def test_the_shared_layout_check_reads_every_block(
    maps: pa.MapArray, block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("trainer.warehouse.feature_layouts._COMPARE_BYTES", block_bytes)
    fast = split_maps(maps)
    monkeypatch.setattr("trainer.warehouse.feature_layouts._shared_names", lambda *_: None)
    slow = split_maps(maps)
    assert fast.layout.equals(slow.layout) and fast.values.equals(slow.values) and fast.layouts == slow.layouts
    assert len(fast.layouts) == len({tuple(k for k, _ in r) for r in maps.to_pylist()})


@pytest.mark.parametrize("bulk_load", [True, False])
def test_offsets_of_many_partitions_are_written_and_replaced_with_their_rows(tmp_path: Path, bulk_load: bool) -> None:
    """A write's offsets go in as bound values (any topic name), replace those stored, and leave the others."""
    odd = 'rlsizer.o\'brien "x"; DROP TABLE offsets; --'
    first = {("t", p): 10 + p for p in range(5)} | {(odd, 0): 3, ("é", 7): 2**40}
    events = [feats(f"s{i}", {"x": float(i)}, i) for i in range(3)]
    with open_warehouse(tmp_path / "wh.duckdb", bulk_load=bulk_load) as wh:
        assert wh.loading is bulk_load
        wh.write({SPEC: SPEC.to_arrow(events[:2], [("t", 0, 0), ("t", 1, 0)])}, first)
        assert wh.offsets() == first
        wh.write({SPEC: SPEC.to_arrow(events[2:], [(odd, 0, 3)])}, {(odd, 0): 4, ("t", 2): 13})
        assert wh.offsets() == first | {(odd, 0): 4, ("t", 2): 13}
        assert _sources(wh) == [("s0", 0), ("s1", 0), ("s2", 3)]
        wh.write({}, {("t", 9): 1})  # offsets alone (a batch of tombstones) still advance
        assert wh.offsets()[("t", 9)] == 1


@pytest.mark.parametrize("read_only", [False, True])
def test_a_warehouse_held_by_another_process_is_refused_not_moved_aside(tmp_path: Path, read_only: bool) -> None:
    """An outside audit opened the warehouse in a Python shell while `rlsizer replay` ran: the replay took
    the lock conflict for corruption, moved the file aside and rebuilt it (history beyond Kafka's retention lost)."""
    import subprocess
    import sys

    path = tmp_path / "wh.duckdb"
    open_warehouse(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time; c = duckdb.connect({str(path)!r}, read_only={read_only}); "
            "print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(WarehouseError, match="open in another process"):
            open_warehouse(path)
        assert path.exists() and not list(tmp_path.glob("*.bad-*"))
    finally:
        holder.kill()
        holder.wait()
    open_warehouse(path).close()  # free again: opened as it is
    assert not list(tmp_path.glob("*.bad-*"))


def test_without_repair_an_unusable_file_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    """`rlsizer backtest --no-refresh --warehouse some.log` used to move the user's file aside and put an empty
    DuckDB database in its place (an outside audit)."""
    path = tmp_path / "notes.log"
    path.write_text("not a database\n")
    with pytest.raises(WarehouseError, match=r"unusable .* left as it is"):
        open_warehouse(path, repair=False)
    assert path.read_text() == "not a database\n" and not list(tmp_path.glob("*.bad-*"))
