"""The DuckDB warehouse: derived state rebuilt from Kafka, one table per event type.

Layout (``SCHEMA_VERSION`` in ``meta``):

- one table per catalogue topic (``bars``, ``signals``, ``features``, ...), named by
  the topic's short name; columns mirror the event's ``.avsc`` fields in order, then
  ``_topic, _partition, _offset`` (where the row was read). ``event_id`` is the
  primary key and writes are ``INSERT OR IGNORE``: an event delivered twice is
  stored once, and the first copy stored wins (events are immutable).
- timestamps are ``TIMESTAMP`` holding UTC (no time zone arithmetic in queries,
  ``datetime64[us]`` straight out).
- Avro maps are ``MAP(VARCHAR, ...)``. ``features.features`` is
  ``MAP(VARCHAR, DOUBLE)``: it arrives from Arrow as a MapArray whose flat keys and
  values let the dataset build its ``[n, d]`` matrix with a vectorised scatter (see
  ``trainer.dataset``), and SQL can still read one feature as ``features['rsi_14']``.
- ``offsets(topic, partition, next_offset)``: written in the same transaction as the
  rows it covers, so a crash never leaves rows without offsets or the reverse.

A file that is not a DuckDB database, fails the integrity query, lacks the schema
version or carries another one, or whose build marker is not ``ready`` is moved
aside (``<name>.bad-<UTC timestamp>``) and rebuilt empty; the replay then refills it
from Kafka.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa

from schemas.catalog import schema_dict
from schemas.events import Event
from streams.topics import CATALOG

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = "1"
READY: Final = "ready"
BUILDING: Final = "building"
SOURCE_COLUMNS: Final = (("_topic", "VARCHAR", pa.string()), ("_partition", "INTEGER", pa.int32()), ("_offset", "BIGINT", pa.int64()))


class WarehouseError(RuntimeError):
    """The warehouse cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    sql_type: str
    arrow_type: pa.DataType
    is_map: bool = False
    is_timestamp: bool = False


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    event_type: type[Event]
    columns: tuple[Column, ...]  # event fields only, in Avro order

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def arrow_schema(self) -> pa.Schema:
        cols = [pa.field(c.name, c.arrow_type) for c in self.columns]
        return pa.schema(cols + [pa.field(n, t) for n, _, t in SOURCE_COLUMNS])

    def to_arrow(self, events: Sequence[Event], sources: Sequence[tuple[str, int, int]]) -> pa.Table:
        """Columns of ``events`` (all of this table's type) plus where each was read."""
        arrays = [_arrow_column(c, [getattr(e, c.name) for e in events]) for c in self.columns]
        topics, partitions, offsets = zip(*sources) if sources else ((), (), ())
        arrays += [pa.array(topics, pa.string()), pa.array(partitions, pa.int32()), pa.array(offsets, pa.int64())]
        return pa.Table.from_arrays(arrays, schema=self.arrow_schema())

    def from_columns(self, columns: Mapping[str, pa.Array], topics: pa.Array, partitions: pa.Array, offsets: pa.Array) -> pa.Table:
        """The table from decoded Avro columns (``EventCodec.decode_batch``) plus where each row was read.

        Timestamp columns hold naive UTC microseconds, as stored; other columns are
        cast to the table's Arrow type (large binary/string -> binary/string, ...).
        """
        arrays = [_cast(columns[c.name], c.arrow_type) for c in self.columns]
        arrays += [_cast(topics, pa.string()), _cast(partitions, pa.int32()), _cast(offsets, pa.int64())]
        return pa.Table.from_arrays(arrays, schema=self.arrow_schema())

    def ddl(self) -> str:
        cols = [f'"{c.name}" {c.sql_type}' for c in self.columns] + [f"{n} {t}" for n, t, _ in SOURCE_COLUMNS]
        return f"CREATE TABLE {self.name} ({', '.join(cols)}, PRIMARY KEY (event_id))"


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
    fields = schema_dict(event_type)["fields"]
    return TableSpec(short_name, event_type, tuple(_column(f["name"], f["type"]) for f in fields))


TABLES: Final[tuple[TableSpec, ...]] = tuple(
    table_spec(spec.short_name, spec.event_type) for spec in CATALOG if spec.event_type is not None
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

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection, *, rebuilt_from: str | None) -> None:
        self.path = path
        self.con = con
        self.rebuilt_from = rebuilt_from  # why the file was rebuilt, or None

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def offsets(self) -> dict[tuple[str, int], int]:
        """Next offset to read per (topic, partition)."""
        return {(t, p): o for t, p, o in self.con.execute("SELECT topic, partition, next_offset FROM offsets").fetchall()}

    def count(self, table: str) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM {_known(table)}").fetchone()[0])

    def write(self, batches: Mapping[TableSpec, pa.Table], offsets: Mapping[tuple[str, int], int]) -> WriteResult:
        """Upsert row batches and advance offsets in one transaction.

        Rows whose ``event_id`` is already stored (or repeated within a batch) are
        ignored; the result counts them as duplicates.
        """
        new_rows = attempted = 0
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            for spec, table in batches.items():
                if table.num_rows == 0:
                    continue
                con.register("_batch", table)
                try:
                    inserted = con.execute(f"INSERT OR IGNORE INTO {spec.name} SELECT * FROM _batch").fetchone()[0]
                finally:
                    con.unregister("_batch")
                new_rows += int(inserted)
                attempted += table.num_rows
            if offsets:
                topics, partitions, nexts = zip(*((t, p, o) for (t, p), o in offsets.items()))
                offs = pa.table({"topic": list(topics), "partition": pa.array(partitions, pa.int32()), "next_offset": pa.array(nexts, pa.int64())})
                con.register("_offsets", offs)
                try:
                    con.execute("INSERT OR REPLACE INTO offsets SELECT * FROM _offsets")
                finally:
                    con.unregister("_offsets")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        return WriteResult(new_rows, attempted - new_rows)


def _known(table: str) -> str:
    if table not in {t.name for t in TABLES} | {"offsets", "meta"}:
        raise WarehouseError(f"unknown warehouse table {table!r}")
    return table


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """All tables and the meta rows, in one transaction (the marker goes ``ready`` last)."""
    con.execute("BEGIN TRANSACTION")
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
    con.execute("INSERT INTO meta VALUES ('state', ?)", [BUILDING])
    for spec in TABLES:
        con.execute(spec.ddl())
    con.execute("CREATE TABLE offsets (topic VARCHAR, partition INTEGER, next_offset BIGINT NOT NULL, PRIMARY KEY (topic, partition))")
    con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])
    con.execute("UPDATE meta SET value = ? WHERE key = 'state'", [READY])
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
    if meta.get("state") != READY:
        return f"build marker is {meta.get('state')!r}, not {READY!r} (unfinished build)"
    try:
        for spec in TABLES:  # integrity: every table readable with the expected columns
            cols = [r[0] for r in con.execute(f"DESCRIBE {spec.name}").fetchall()]
            expected = list(spec.field_names) + [n for n, _, _ in SOURCE_COLUMNS]
            if cols != expected:
                return f"table {spec.name} has columns {cols}, expected {expected}"
            con.execute(f"SELECT count(*) FROM {spec.name}").fetchone()
        con.execute("SELECT count(*), sum(next_offset) FROM offsets").fetchone()
    except duckdb.Error as exc:
        return f"integrity query failed: {exc}"
    return None


def _move_aside(path: Path, reason: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.bad-{stamp}")
    path.rename(target)
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        wal.rename(target.with_name(target.name + ".wal"))
    log.warning("warehouse %s is unusable (%s): moved to %s, rebuilding from Kafka", path, reason, target)
    return target


def open_warehouse(path: Path, *, rebuild: bool = False) -> Warehouse:
    """Open the warehouse at ``path``, creating it or rebuilding it when it is unusable.

    ``rebuild=True`` moves an existing file aside unconditionally.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reason: str | None = None
    if path.exists():
        if rebuild:
            reason = "rebuild requested"
        else:
            try:
                con = duckdb.connect(str(path))
            except duckdb.Error as exc:
                reason = f"cannot be opened as DuckDB: {exc}"
            else:
                reason = problem(con)
                if reason is None:
                    return Warehouse(path, con, rebuilt_from=None)
                con.close()
        _move_aside(path, reason)
    else:
        log.info("warehouse %s does not exist: building it from Kafka", path)
    con = duckdb.connect(str(path))
    try:
        create_schema(con)
    except Exception:
        con.close()
        raise
    return Warehouse(path, con, rebuilt_from=reason)
