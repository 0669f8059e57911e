"""Recorded history -> LoggedSignals: the backtest's rows, features, labels and account events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents.features import FEATURE_NAMES
from schemas.events import SizeDecided, TradeClosed
from tests.unit.trainer.recorded import SMAP, Recorded, record
from trainer.backtest.logged_signals import NoSignals, from_history, history_bounds, load_logged_signals
from trainer.backtest.run import fixed_policy, run_policy


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record(tmp_path_factory.mktemp("wh") / "warehouse.duckdb", bars=200)


def test_rows_features_and_labels_are_the_backtests(recorded: Recorded) -> None:
    con = recorded.connect()
    start, end = history_bounds(con)
    con.close()
    history = recorded.history(start, end)
    data = from_history(history, SMAP)
    run = run_policy(history, fixed_policy(), SMAP)
    assert tuple(s.signal_id for s in data.signals) == run.signal_ids
    assert len(data) == len(recorded.worker.decisions)
    assert data.feature_names == FEATURE_NAMES
    for i, sid in enumerate(run.signal_ids):
        assert list(data.features[i]) == [run.features[sid].features[n] for n in FEATURE_NAMES]
    np.testing.assert_array_equal(data.scored, run.scored)
    np.testing.assert_array_equal(data.r_multiple[data.scored], run.r_multiple[run.scored])
    np.testing.assert_array_equal(data.cost_r[data.scored], run.cost_r[run.scored])
    assert set(data.symbol) == {"AAPL", "EURUSD"}


def test_the_account_log_holds_each_symbols_decisions_and_closes_in_order(recorded: Recorded) -> None:
    con = recorded.connect()
    data = load_logged_signals(con, SMAP)
    con.close()
    log = data.account
    assert len(log.lanes) == 2
    for items in log.lanes:
        symbols = {(log.signals[i] if isinstance(i, int) else i).symbol for i in items}
        assert len(symbols) == 1
        closes = [i for i in items if isinstance(i, TradeClosed)]
        assert len({c.signal_id for c in closes}) == len(closes) > 0
    assert all(isinstance(d, SizeDecided) for d in log.live)  # every row was decided live
    assert [d.signal_id for d in log.live] == [s.signal_id for s in log.signals]


def test_a_later_window_starts_from_the_live_account(recorded: Recorded) -> None:
    con = recorded.connect()
    full = load_logged_signals(con, SMAP)
    cut = full.ts[len(full) // 2]
    from tests.unit.trainer.recorded import utc

    later = load_logged_signals(con, SMAP, start=utc(cut))
    con.close()
    assert len(later) < len(full) and later.ts.min() >= cut
    warm = [i for lane in later.account.lanes for i in lane if isinstance(i, SizeDecided)]
    assert warm and all(d.ts_event < utc(cut) for d in warm)  # signals before the window: their live decisions


def test_no_signals_is_a_clear_error(tmp_path: Path) -> None:
    import duckdb

    from trainer.warehouse.store import create_schema

    con = duckdb.connect(str(tmp_path / "empty.duckdb"))
    create_schema(con)
    with pytest.raises(NoSignals):
        load_logged_signals(con, SMAP)
    assert history_bounds(con) is None
