"""A small recorded history for trainer tests: real bars through the worker's pure functions (no broker).

Daily AAPL and hourly EUR/USD by default (two symbols, two calendars) under the rules, then a tiny model
swapped in live part-way (``swap_at``), so the recorded decisions mix RULES, FALLBACK and
MODEL, and the account carries open risk across sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np

from agents.sizing import PolicySlot
from agents.strategy_map import StrategyMap
from rlsizer.reference.data import load_dataset
from rlsizer.reference.loop import RunConfig, run
from tests.unit.trainer.backtest_live import PureWorker, model_policy_bytes, tiny_model
from trainer.backtest.events import History, load_history

SMAP = StrategyMap.from_spec("")
LIVE_VERSION = "v20240101T000000Z-live"


@dataclass(frozen=True)
class Recorded:
    path: Path
    worker: PureWorker
    onnx: bytes

    def history(self, start: datetime, end: datetime) -> History:
        con = duckdb.connect(str(self.path), read_only=True)
        try:
            return load_history(con, start, end)
        finally:
            con.close()

    def connect(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.path), read_only=True)


def record(path: Path, *, bars: int = 360, names: tuple[str, ...] = ("AAPL", "EURUSD")) -> Recorded:
    """``names`` streamed one after the other on one partition: with two stocks of the same dates the
    log order (all of the first, then the second) is not time order."""
    onnx = tiny_model(seed=7)
    worker = PureWorker(slot=PolicySlot(), swap_at=int(bars * 1.3), later=model_policy_bytes(onnx, LIVE_VERSION))
    for name in names:
        frame = load_dataset(name).iloc[:bars]
        run(
            frame,
            RunConfig(symbol=frame.attrs["symbol"], interval=frame.attrs["interval"], run_id="t"),
            worker,
            progress=False,
        )
    worker.write_warehouse(path)
    return Recorded(path=path, worker=worker, onnx=onnx)


def utc(ts: np.datetime64) -> datetime:
    return np.datetime64(ts, "us").astype(datetime).replace(tzinfo=UTC)


def day_after(ts: np.datetime64) -> datetime:
    return utc(ts) + timedelta(days=1)
