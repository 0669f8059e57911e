"""The offline recorder: the shipped data through the worker's pure functions, into warehouse tables."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path

import duckdb
import pytest

from agents.strategy_map import StrategyMap
from rlsizer.reference.offline import record_datasets
from trainer.backtest.events import load_history
from trainer.backtest.parity import check_parity
from trainer.backtest.run import rules_policy, run_policy


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("offline") / "warehouse.duckdb"
    lines = record_datasets(["AAPL", "EURUSD"], path, max_bars=250)
    assert set(lines) == {"AAPL", "EURUSD"} and all("250 bars" in line for line in lines.values())
    return path


def test_every_event_is_in_its_table(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse), read_only=True)
    counts = {
        t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("bars", "signals", "decisions", "features", "fills", "outcomes")
    }
    symbols = {s for (s,) in con.execute("SELECT DISTINCT symbol FROM signals").fetchall()}
    con.close()
    assert counts["bars"] == 500 and symbols == {"AAPL", "EURUSD"}
    assert counts["signals"] == counts["decisions"] == counts["features"] > 50
    assert 0 < counts["outcomes"] <= counts["signals"] and counts["fills"] == 2 * counts["outcomes"]


def test_a_backtest_of_the_rules_reproduces_the_recorded_decisions(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse), read_only=True)
    first, last = con.execute("SELECT min(ts_event), max(ts_event) FROM signals").fetchone()
    history = load_history(con, first.replace(tzinfo=UTC), last.replace(tzinfo=UTC) + timedelta(days=1))
    con.close()
    report = check_parity(run_policy(history, rules_policy(), StrategyMap.from_spec("")), history)
    assert report.compared == len(history.window_ids) and report.ok(), report.summary()


def test_an_existing_warehouse_is_not_overwritten(warehouse: Path) -> None:
    with pytest.raises(FileExistsError):
        record_datasets(["AAPL"], warehouse, max_bars=10)
