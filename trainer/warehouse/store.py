"""The DuckDB warehouse: derived state rebuilt from Kafka, one table per event type.

Layout (``SCHEMA_VERSION`` in ``meta``):

- one table per catalogue topic (``bars``, ``signals``, ``features``, ...), named by
  the topic's short name; columns mirror the event's ``.avsc`` fields in order, then
  ``_topic, _partition, _offset`` (where the row was read). An event delivered twice
  is stored once, and the first copy stored wins (events are immutable): writes
  insert only rows whose ``event_id`` the table does not hold yet (see "Idempotence
  without an index"). Version-2 files made by earlier code also carry a unique
  ``event_id`` index or ``PRIMARY KEY``; they read and write the same, only slower.
- timestamps are ``TIMESTAMP`` holding UTC (no time zone arithmetic in queries,
  ``datetime64[us]`` straight out).
- Avro maps are ``MAP(VARCHAR, ...)``, except ``FeaturesComputed.features`` (60+
  named doubles per event, most of the replay's rows by volume): inserting a DuckDB
  MAP validates every key and was most of the replay's time, so the ``features``
  table stores it in its place as ``feature_layout VARCHAR`` (the id of the ordered
  name list) and ``feature_values DOUBLE[]`` (the values in that order), with each
  name list stored once in ``feature_layouts(layout, names VARCHAR[])`` (see
  ``trainer.warehouse.feature_layouts``; layouts are written in the same transaction as the
  rows using them). The dataset builds its ``[n, d]`` matrix from these directly.
- ``features_by_name`` is a view with the event's own columns (``features`` as
  ``MAP(VARCHAR, DOUBLE)``, exactly the recorded names and values), so SQL reads one
  feature by name as before::

      SELECT signal_id, features['rsi_14'] FROM features_by_name WHERE feature_set = 'fs1'

  Building maps costs time on large scans; there, index the list instead::

      SELECT f.signal_id, f.feature_values[list_position(l.names, 'rsi_14')]
      FROM features f JOIN feature_layouts l ON l.layout = f.feature_layout
- ``offsets(topic, partition, next_offset)``: written in the same transaction as the
  rows it covers, so a crash never leaves rows without offsets or the reverse.

Idempotence without an index: a unique ``event_id`` index (DuckDB's ART) made a
replay pay for it three times: per row while inserting (or in one build after a
bulk load: a third of the replay's DuckDB time), when checkpointing (an index about
as large as the data it covers), and when an incremental replay opened a large
file (the index is read back, then rewritten whole by the closing checkpoint: on a
synthetic 5M-row table, 1.6-2.7 s to add 10k rows against 0.2 s without it; a real
replay of 2k bench events onto 1M took 0.52 s against 0.39 s). So no table has
one; ``Warehouse.write`` inserts a batch's rows with an anti-join against the
table's ``event_id`` column (one hash join per table and transaction; a batch's
own repeats are dropped before, keeping the first).

Bulk load: a file created for a replay (``open_warehouse(..., bulk_load=True)``)
starts in state ``loading``: writes are plain ``INSERT``s (rows and offsets still
commit together), and ``Warehouse.finish_load`` then deletes every repeated
``event_id`` but the first stored (lowest ``rowid``: rows are only appended while
loading, so that is commit order, the copy the anti-join would have kept) and marks
the file ``ready``, in one transaction that is safe to repeat. A ``loading`` file
left by a crash is finished by the next ``open_warehouse`` (its rows were only ever
appended, so rowid order still holds). Only a file created by the opening call is
loaded in bulk; every other user sees ``ready`` files.

Row groups of ``ROW_GROUP_ROWS``: the file is attached with row groups far smaller
than DuckDB's default (122,880 rows). A transaction appending at least one row
group to a table has it compressed and written straight into the file as it goes
(DuckDB's optimistic writes, on the replay's writer thread, overlapping the
decoding), and its commit logs only where those blocks are; smaller appends are
logged whole in the write-ahead log and copied into the file by the next
checkpoint. With the default size a replay's flushes (tens of thousands of rows
spread over the tables) never filled one, so every row went through the log and
again through the closing checkpoint: about 0.25 s of a 200k-event replay after
its last write, now about 0.02 s. The size is not stored in the file: it holds for
connections made by ``open_warehouse``; readers do not need it.

Calls per write: each call into DuckDB's Python client gives the GIL up and takes it
back several times (registering an Arrow table about 7 times, dropping it 7, an
``INSERT`` of it about 13), and while the replay's consuming thread holds the GIL each
take can wait up to the interpreter's switch interval (5 ms). So a bulk load appends
each table with ``from_arrow(table).insert_into(name)`` (nothing to register and drop)
and writes the offsets as one ``INSERT`` of bound values. Measured on the 200k bench
events written in four transactions: 0.27 s instead of 0.36 s alone, and 2.1 s
instead of 3.2 s beside a thread running Python all along.

Checkpoints: DuckDB folds its write-ahead log into the file once the log passes
``CHECKPOINT_THRESHOLD`` and on close. A larger threshold than the default (16 MB)
checkpoints once per replay, when it closes (commits still write and sync the log,
so durability is unchanged). That closing checkpoint stays: closing without it
(``disable_checkpoint_on_shutdown``) left the log for the next open to replay,
which then cost about twice as much as the checkpoint.

A file that is not a DuckDB database, fails the integrity query, lacks the schema
version or carries another one, or whose build marker is not ``ready`` is moved
aside (``<name>.bad-<UTC timestamp>``) and rebuilt empty; the replay then refills it
from Kafka.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.catalog import schema_dict
from schemas.events import EVENT_TYPES, Event, FeaturesComputed
from streams.topics import TOPIC_FOR_EVENT
from trainer.warehouse.feature_layouts import (
    LAYOUT_COLUMN,
    LAYOUT_TYPE,
    VALUES_COLUMN,
    VALUES_TYPE,
    Layouts,
    split_maps,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = (
    "3"  # 2: features as layout + DOUBLE[] instead of MAP; 3: bars, signals, fills from rlsizer.inputs
)
READY: Final = "ready"
BUILDING: Final = "building"
LOADING: Final = "loading"  # filled by a replay, repeats not yet removed (see "Bulk load")
CHECKPOINT_THRESHOLD: Final = "256MB"  # about 1M replayed events of log before DuckDB folds it into the file
ROW_GROUP_ROWS: Final = 4096  # see "Row groups"; a replay flush of 50k records gives the smallest table about 5k rows
DATABASE: Final = "warehouse"  # the file's name in its connection (attached, then made the default)
SOURCE_COLUMNS: Final = (
    ("_topic", "VARCHAR", pa.string()),
    ("_partition", "INTEGER", pa.int32()),
    ("_offset", "BIGINT", pa.int64()),
)
BY_LAYOUT: Final[frozenset[tuple[type[Event], str]]] = frozenset(
    {(FeaturesComputed, "features")}
)  # map fields stored by layout
LAYOUTS_TABLE: Final = "feature_layouts"


class WarehouseError(RuntimeError):
    """The warehouse cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    sql_type: str
    arrow_type: pa.DataType
    is_map: bool = False
    is_timestamp: bool = False
    by_layout: bool = False  # a map of doubles stored as (feature_layout, feature_values)

    def stored(self) -> tuple[tuple[str, str, pa.DataType], ...]:
        """(name, SQL type, Arrow type) of the table column(s) holding this field."""
        if self.by_layout:
            return ((LAYOUT_COLUMN, "VARCHAR", LAYOUT_TYPE), (VALUES_COLUMN, "DOUBLE[]", VALUES_TYPE))
        return ((self.name, self.sql_type, self.arrow_type),)


@dataclass(frozen=True, slots=True)
class Rows:
    """Rows for one table, and the feature layouts they reference (written with them)."""

    table: pa.Table
    layouts: Layouts = field(default_factory=dict)

    @staticmethod
    def concat(parts: Sequence[Rows]) -> Rows:
        tables = [p.table for p in parts]
        return Rows(
            tables[0] if len(tables) == 1 else pa.concat_tables(tables),
            {k: v for p in parts for k, v in p.layouts.items()},
        )


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    event_type: type[Event]
    columns: tuple[Column, ...]  # event fields only, in Avro order

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def stored_columns(self) -> tuple[tuple[str, str, pa.DataType], ...]:
        """(name, SQL type, Arrow type) of the table's columns, in order, source columns last."""
        return tuple(s for c in self.columns for s in c.stored()) + SOURCE_COLUMNS

    @property
    def by_layout(self) -> bool:
        return any(c.by_layout for c in self.columns)

    @property
    def reader(self) -> str:
        """The relation whose columns are the event's fields (then the source columns)."""
        return f"{self.name}_by_name" if self.by_layout else self.name

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(n, t) for n, _, t in self.stored_columns])

    def to_arrow(self, events: Sequence[Event], sources: Sequence[tuple[str, int, int]]) -> Rows:
        """Rows of ``events`` (all of this table's type) plus where each was read."""
        layouts: dict[str, tuple[str, ...]] = {}
        arrays = [
            a
            for c in self.columns
            for a in _stored_arrays(c, _arrow_column(c, [getattr(e, c.name) for e in events]), layouts)
        ]
        topics, partitions, offsets = zip(*sources, strict=True) if sources else ((), (), ())
        arrays += [pa.array(topics, pa.string()), pa.array(partitions, pa.int32()), pa.array(offsets, pa.int64())]
        return Rows(pa.Table.from_arrays(arrays, schema=self.arrow_schema()), layouts)

    def from_columns(
        self, columns: Mapping[str, pa.Array], topics: pa.Array, partitions: pa.Array, offsets: pa.Array
    ) -> Rows:
        """Rows from decoded Avro columns (``EventCodec.decode_batch``) plus where each row was read.

        Timestamp columns hold naive UTC microseconds, as stored; other columns are
        cast to the table's Arrow type (large binary/string -> binary/string, ...).
        """
        layouts: dict[str, tuple[str, ...]] = {}
        arrays = [a for c in self.columns for a in _stored_arrays(c, _cast(columns[c.name], c.arrow_type), layouts)]
        arrays += [_cast(topics, pa.string()), _cast(partitions, pa.int32()), _cast(offsets, pa.int64())]
        return Rows(pa.Table.from_arrays(arrays, schema=self.arrow_schema()), layouts)

    def ddl(self) -> str:
        cols = [f'"{n}" {t}' for n, t, _ in self.stored_columns]
        return f"CREATE TABLE {self.name} ({', '.join(cols)})"

    def insert_new_sql(self) -> str:
        """Insert the rows of ``_batch`` whose ``event_id`` the table does not hold (a hash anti-join)."""
        return f"INSERT INTO {self.name} SELECT * FROM _batch b WHERE NOT EXISTS (SELECT 1 FROM {self.name} t WHERE t.event_id = b.event_id)"

    def dedupe_sql(self) -> str:
        """Delete every repeated ``event_id`` but its first stored row (while loading, rowid is commit order)."""
        return f"DELETE FROM {self.name} WHERE rowid NOT IN (SELECT min(rowid) FROM {self.name} GROUP BY event_id)"

    def view_ddl(self) -> str | None:
        """The ``<name>_by_name`` view giving by-layout fields back as maps, or None if there are none."""
        if not self.by_layout:
            return None
        cols = [
            f'MAP(l.names, t.{VALUES_COLUMN}) AS "{c.name}"' if c.by_layout else f't."{c.name}"' for c in self.columns
        ]
        cols += [f"t.{n}" for n, _, _ in SOURCE_COLUMNS]
        return (
            f"CREATE VIEW {self.reader} AS SELECT {', '.join(cols)} "
            f"FROM {self.name} t LEFT JOIN {LAYOUTS_TABLE} l ON l.layout = t.{LAYOUT_COLUMN}"
        )


def first_copies(table: pa.Table) -> pa.Table:
    """``table`` without the rows whose ``event_id`` an earlier row already has (usually ``table`` itself)."""
    ids = table.column("event_id")
    if pc.count_distinct(ids, mode="all").as_py() == table.num_rows:
        return table
    positions = pa.table({"event_id": ids, "at": pa.array(np.arange(table.num_rows, dtype=np.int64))})
    first = positions.group_by("event_id", use_threads=False).aggregate([("at", "min")]).column("at_min")
    return table.take(pa.array(np.sort(first.to_numpy())))  # kept rows in their batch order


def _stored_arrays(column: Column, array: pa.Array, layouts: dict[str, tuple[str, ...]]) -> list[pa.Array]:
    """The table array(s) for one field's array; a by-layout field adds the layouts it uses."""
    if not column.by_layout:
        return [array]
    split = split_maps(array)
    layouts.update(split.layouts)
    return [split.layout, split.values]


def _cast(array: pa.Array, arrow_type: pa.DataType) -> pa.Array:
    return array if array.type == arrow_type else array.cast(arrow_type)


def _arrow_column(column: Column, values: list[Any]) -> pa.Array:
    if column.is_timestamp:  # aware datetimes -> UTC instants -> naive UTC (the stored convention)
        return pa.array(values, pa.timestamp("us", tz="UTC")).cast(column.arrow_type)
    if column.is_map:
        values = [None if v is None else list(v.items()) for v in values]
    return pa.array(values, column.arrow_type)


_PRIMITIVES: Final[dict[str, tuple[str, pa.DataType]]] = {
    "string": ("VARCHAR", pa.string()),
    "double": ("DOUBLE", pa.float64()),
    "float": ("FLOAT", pa.float32()),
    "long": ("BIGINT", pa.int64()),
    "int": ("INTEGER", pa.int32()),
    "boolean": ("BOOLEAN", pa.bool_()),
    "bytes": ("BLOB", pa.binary()),
}


def _column(name: str, avro_type: Any) -> Column:
    if isinstance(avro_type, list):  # ["null", T]: nullable T (every column is nullable)
        non_null = [t for t in avro_type if t != "null"]
        if len(non_null) != 1:
            raise WarehouseError(f"field {name}: unsupported union {avro_type}")
        return _column(name, non_null[0])
    if isinstance(avro_type, dict):
        if avro_type.get("logicalType") == "timestamp-micros":
            return Column(name, "TIMESTAMP", pa.timestamp("us"), is_timestamp=True)
        if avro_type.get("type") == "map":
            sql, arrow = _PRIMITIVES[avro_type["values"]]
            return Column(name, f"MAP(VARCHAR, {sql})", pa.map_(pa.string(), arrow), is_map=True)
        if avro_type.get("type") == "enum":  # symbols are stored as text, as the events hold them
            return Column(name, "VARCHAR", pa.string())
        return _column(name, avro_type["type"])
    try:
        sql, arrow = _PRIMITIVES[avro_type]
    except KeyError:
        raise WarehouseError(f"field {name}: unsupported Avro type {avro_type!r}") from None
    return Column(name, sql, arrow)


def table_spec(short_name: str, event_type: type[Event]) -> TableSpec:
    columns = []
    for f in schema_dict(event_type)["fields"]:
        column = _column(f["name"], f["type"])
        if (event_type, column.name) in BY_LAYOUT:
            if column.sql_type != "MAP(VARCHAR, DOUBLE)":
                raise WarehouseError(
                    f"{event_type.__name__}.{column.name}: only a map of doubles can be stored by layout"
                )
            column = Column(column.name, column.sql_type, column.arrow_type, is_map=True, by_layout=True)
        columns.append(column)
    if sum(c.by_layout for c in columns) > 1:
        raise WarehouseError(f"{event_type.__name__}: at most one field per table can be stored by layout")
    return TableSpec(short_name, event_type, tuple(columns))


_TABLE_OF: Final[dict[str, str]] = {
    "BarClosed": "bars",
    "SignalRaised": "signals",
    "FeaturesComputed": "features",
    "SizeDecided": "decisions",
    "OrderFilled": "fills",
    "TradeClosed": "outcomes",
    "ModelPublished": "models",
    "HealthChecked": "health",
    "EventRejected": "dlq",
}
TABLE_NAMES: Final[dict[type[Event], str]] = {t: _TABLE_OF[t.__name__] for t in EVENT_TYPES}
"""One table per event type (the ``inputs`` topic's three types go to three tables)."""
TABLES: Final[tuple[TableSpec, ...]] = tuple(
    table_spec(name, event_type) for event_type, name in TABLE_NAMES.items() if event_type in TOPIC_FOR_EVENT
)
TABLE_FOR_EVENT: Final[dict[type[Event], TableSpec]] = {t.event_type: t for t in TABLES}


def default_path(data_dir: Path) -> Path:
    return Path(data_dir) / "warehouse.duckdb"


@dataclass(frozen=True, slots=True)
class WriteResult:
    new_rows: int
    duplicates: int


class Warehouse:
    """An open, validated warehouse. Use ``open_warehouse``; close it (or use ``with``)."""

    def __init__(
        self, path: Path, con: duckdb.DuckDBPyConnection, *, rebuilt_from: str | None, loading: bool = False
    ) -> None:
        self.path = path
        self.con = con
        self.rebuilt_from = rebuilt_from  # why the file was rebuilt, or None
        self.loading = loading  # state ``loading``: rows appended as they come, ``finish_load`` removes repeats
        self._layouts: dict[
            str, tuple[str, ...]
        ] = {}  # layouts this object has committed: not checked or written again

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """Another connection to the same database whose default is the warehouse, as ``con``'s is
        (DuckDB's ``cursor()`` alone starts in its in-memory catalog)."""
        cur = self.con.cursor()
        cur.execute(f"USE {DATABASE}")
        return cur

    def offsets(self) -> dict[tuple[str, int], int]:
        """Next offset to read per (topic, partition)."""
        return {
            (t, p): o for t, p, o in self.con.execute("SELECT topic, partition, next_offset FROM offsets").fetchall()
        }

    def count(self, table: str) -> int:
        return int(_one_row(self.con, f"SELECT count(*) FROM {_known(table)}")[0])

    def write(self, batches: Mapping[TableSpec, Rows], offsets: Mapping[tuple[str, int], int]) -> WriteResult:
        """Upsert row batches, the feature layouts they use, and advance offsets, in one transaction.

        Rows whose ``event_id`` is already stored (or repeated earlier in the batch)
        are left out; the result counts them as duplicates. While ``loading``, every
        row is appended and counted new: ``finish_load`` removes and counts the repeats.
        """
        new_rows = attempted = 0
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            layouts = {k: v for rows in batches.values() for k, v in rows.layouts.items() if self._layouts.get(k) != v}
            _write_layouts(con, layouts)
            for spec, rows in batches.items():
                table = rows.table
                if table.num_rows == 0:
                    continue
                if self.loading:  # a plain append: no name to register and drop (see "Calls per write")
                    con.from_arrow(table).insert_into(spec.name)
                    inserted = table.num_rows
                else:
                    con.register("_batch", first_copies(table))
                    try:
                        inserted = _one_row(con, spec.insert_new_sql())[0]
                    finally:
                        con.unregister("_batch")
                new_rows += int(inserted)
                attempted += table.num_rows
            if offsets:
                con.execute(
                    "INSERT OR REPLACE INTO offsets VALUES " + ", ".join(["(?, ?, ?)"] * len(offsets)),
                    [v for (topic, partition), next_offset in offsets.items() for v in (topic, partition, next_offset)],
                )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        self._layouts.update(layouts)
        return WriteResult(new_rows, attempted - new_rows)

    def finish_load(self) -> int:
        """End a bulk load: delete repeated ``event_id``s (first stored copy wins) and mark ``ready``.

        Returns the number of rows deleted (the duplicates the loading writes counted
        as new). One transaction, safe to repeat after a crash. Does nothing on a
        ``ready`` warehouse.
        """
        if not self.loading:
            return 0
        con = self.con
        removed = 0
        con.execute("BEGIN TRANSACTION")
        try:
            for spec in TABLES:
                removed += int(_one_row(con, spec.dedupe_sql())[0])
            con.execute("UPDATE meta SET value = ? WHERE key = 'state'", [READY])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        self.loading = False
        return removed


def _write_layouts(con: duckdb.DuckDBPyConnection, layouts: Layouts) -> None:
    """Store new layouts; an id already stored with other names (a hash collision) is an error."""
    if not layouts:
        return
    table = pa.table(
        {
            "layout": pa.array(list(layouts), pa.string()),
            "names": pa.array([list(v) for v in layouts.values()], pa.list_(pa.string())),
        }
    )
    con.register("_layouts", table)
    try:
        clashes = con.execute(
            f"SELECT b.layout FROM _layouts b JOIN {LAYOUTS_TABLE} l USING (layout) WHERE l.names <> b.names"
        ).fetchall()
        if clashes:
            raise WarehouseError(
                f"feature layout id {clashes[0][0]} is already stored for other names (hash collision)"
            )
        con.execute(f"INSERT OR IGNORE INTO {LAYOUTS_TABLE} SELECT * FROM _layouts")
    finally:
        con.unregister("_layouts")


def _known(table: str) -> str:
    if table not in {t.name for t in TABLES} | {"offsets", "meta", LAYOUTS_TABLE}:
        raise WarehouseError(f"unknown warehouse table {table!r}")
    return table


def create_schema(con: duckdb.DuckDBPyConnection, *, bulk_load: bool = False) -> None:
    """All tables and the meta rows, in one transaction (the marker goes ``ready`` last).

    ``bulk_load``: leave the marker at ``loading`` (see "Bulk load";
    ``Warehouse.finish_load`` completes it).
    """
    con.execute("BEGIN TRANSACTION")
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
    con.execute("INSERT INTO meta VALUES ('state', ?)", [BUILDING])
    con.execute(f"CREATE TABLE {LAYOUTS_TABLE} (layout VARCHAR PRIMARY KEY, names VARCHAR[] NOT NULL)")
    for spec in TABLES:
        con.execute(spec.ddl())
        if (view := spec.view_ddl()) is not None:
            con.execute(view)
    con.execute(
        "CREATE TABLE offsets (topic VARCHAR, partition INTEGER, next_offset BIGINT NOT NULL, PRIMARY KEY (topic, partition))"
    )
    con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])
    con.execute("UPDATE meta SET value = ? WHERE key = 'state'", [LOADING if bulk_load else READY])
    con.execute("COMMIT")


def problem(con: duckdb.DuckDBPyConnection) -> str | None:
    """Why this database is not a usable warehouse, or None if it is."""
    try:
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    except duckdb.Error as exc:
        return f"no readable meta table ({exc.__class__.__name__})"
    if "schema_version" not in meta:
        return "schema version missing (half-written)"
    if meta["schema_version"] != SCHEMA_VERSION:
        return f"schema version {meta['schema_version']!r}, this code writes {SCHEMA_VERSION!r}"
    if meta.get("state") not in (READY, LOADING):
        return f"build marker is {meta.get('state')!r}, not {READY!r} (unfinished build)"
    try:
        for spec in TABLES:  # integrity: every table readable with the expected columns
            cols = [r[0] for r in con.execute(f"DESCRIBE {spec.name}").fetchall()]
            expected = [n for n, _, _ in spec.stored_columns]
            if cols != expected:
                return f"table {spec.name} has columns {cols}, expected {expected}"
            con.execute(f"SELECT count(*) FROM {spec.name}").fetchone()
            if spec.reader != spec.name:
                cols = [r[0] for r in con.execute(f"DESCRIBE {spec.reader}").fetchall()]
                expected = list(spec.field_names) + [n for n, _, _ in SOURCE_COLUMNS]
                if cols != expected:
                    return f"view {spec.reader} has columns {cols}, expected {expected}"
        con.execute(f"SELECT count(*), count(names) FROM {LAYOUTS_TABLE}").fetchone()
        con.execute("SELECT count(*), sum(next_offset) FROM offsets").fetchone()
    except duckdb.Error as exc:
        return f"integrity query failed: {exc}"
    return None


def _move_aside(path: Path, reason: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.bad-{stamp}")
    path.rename(target)
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        wal.rename(target.with_name(target.name + ".wal"))
    log.warning("warehouse %s is unusable (%s): moved to %s, rebuilding from Kafka", path, reason, target)
    return target


def open_warehouse(path: Path, *, rebuild: bool = False, bulk_load: bool = False, repair: bool = True) -> Warehouse:
    """Open the warehouse at ``path``, creating it or rebuilding it when it is unusable.

    ``rebuild=True`` moves an existing file aside unconditionally. ``repair=False``
    raises ``WarehouseError`` for an unusable file instead (a reader that will not
    refill it must not replace it with an empty one). ``bulk_load=True``
    (the replay): a file created by this call is returned ``loading`` (call
    ``finish_load`` once written). A ``loading`` file found on disk is finished first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reason: str | None = None
    if path.exists():
        if rebuild:
            reason = "rebuild requested"
        else:
            try:
                con = connect(path)
            except duckdb.Error as exc:
                if _held_by_another_process(exc):  # a usable file: moving it aside would throw its history away
                    raise WarehouseError(
                        f"warehouse {path} is open in another process, so it cannot be used now "
                        f"({exc}); close that process, or give this one another warehouse path"
                    ) from exc
                reason = f"cannot be opened as DuckDB: {exc}"
            else:
                reason = problem(con)
                if reason is None:
                    return _finished(Warehouse(path, _configured(con), rebuilt_from=None, loading=_is_loading(con)))
                con.close()
            if not repair:
                raise WarehouseError(f"warehouse {path} is unusable ({reason}); left as it is")
        _move_aside(path, reason)
    else:
        log.info("warehouse %s does not exist: building it from Kafka", path)
    con = connect(path)
    try:
        create_schema(con, bulk_load=bulk_load)
    except Exception:
        con.close()
        raise
    return Warehouse(path, _configured(con), rebuilt_from=reason, loading=bulk_load)


def _held_by_another_process(exc: duckdb.Error) -> bool:
    """DuckDB refused the file because another process holds its lock (the file itself may be fine)."""
    return isinstance(exc, duckdb.IOException) and "Could not set lock" in str(exc)


def _is_loading(con: duckdb.DuckDBPyConnection) -> bool:
    return con.execute("SELECT value FROM meta WHERE key = 'state'").fetchone() == (LOADING,)


def _finished(warehouse: Warehouse) -> Warehouse:
    """``warehouse``, with a bulk load left unfinished (a crashed replay) finished: its rows were only appended."""
    if warehouse.loading:
        try:
            removed = warehouse.finish_load()
        except Exception:
            warehouse.close()
            raise
        log.info(
            "warehouse %s: finished a bulk load left unfinished (%d repeated events removed)", warehouse.path, removed
        )
    return warehouse


def connect(path: Path) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is the file at ``path``, with row groups of ``ROW_GROUP_ROWS``.

    Raises ``duckdb.Error`` if the file cannot be opened as a DuckDB database.
    """
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {_sql_text(str(path))} AS {DATABASE} (ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
        con.execute(f"USE {DATABASE}")
    except BaseException:
        con.close()
        raise
    return con


def _sql_text(text: str) -> str:
    """``text`` as a SQL string literal (ATTACH takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def _configured(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
    return con


def _one_row(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    """The one row of an aggregate (or ``RETURNING count``) query."""
    row = con.execute(sql).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {sql!r}")
    return row
