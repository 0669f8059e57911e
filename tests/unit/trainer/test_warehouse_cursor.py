"""Warehouse.cursor: a second connection that reads the warehouse's tables by their plain names."""

from __future__ import annotations

from trainer.warehouse.store import open_warehouse


def test_a_cursor_reads_the_warehouse_tables_while_the_main_connection_holds_a_result(tmp_path):
    with open_warehouse(tmp_path / "w.duckdb") as warehouse:
        pending = warehouse.con.execute("SELECT count(*) FROM outcomes")  # left unfetched
        cur = warehouse.cursor()
        assert cur.sql("SELECT count(*) FROM outcomes").fetchall() == [(0,)]
        assert pending.fetchone() == (0,)
