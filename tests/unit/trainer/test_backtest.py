"""Backtest by replay against a pure worker run in live order (no broker): parity, determinism, scoring."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest

from agents.features import FEATURE_NAMES, FEATURE_SET
from agents.sizing import PolicySlot
from agents.strategy_map import StrategyMap
from rlsizer.reference.data import load_dataset
from rlsizer.reference.loop import RunConfig, run
from schemas.events import SizeDecided
from tests.unit.trainer.backtest_live import PureWorker, model_policy_bytes, tiny_model
from trainer.backtest.events import load_history
from trainer.backtest.parity import check_parity
from trainer.backtest.report import text_report, write_html
from trainer.backtest.run import (
    BacktestError,
    PolicySpec,
    backtest,
    fixed_policy,
    live_policy,
    rules_policy,
    run_policy,
)

FRAME = load_dataset("AAPL").iloc[:520]
SMAP = StrategyMap.from_spec("")
VERSION = "v20240101T000000Z-tiny"


@pytest.fixture(scope="module")
def onnx() -> bytes:
    return tiny_model(seed=7)


@pytest.fixture(scope="module")
def live(onnx: bytes, tmp_path_factory: pytest.TempPathFactory) -> tuple[PureWorker, Path]:
    worker = PureWorker(slot=PolicySlot(model_policy_bytes(onnx, VERSION)))
    run(FRAME, RunConfig(symbol="AAPL", interval="1d", run_id="bt"), worker, progress=False)
    return worker, worker.write_warehouse(tmp_path_factory.mktemp("wh") / "warehouse.duckdb")


def window(worker: PureWorker, frac: float = 0.5):
    bars = [e for e, *_ in worker.recorded if type(e).__name__ == "BarClosed"]
    start = bars[int(len(bars) * frac)].ts_event
    return start, bars[-1].ts_event + timedelta(days=1)


def history_of(path: Path, start, end):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return load_history(con, start, end)
    finally:
        con.close()


def model_spec(onnx: bytes, version: str = VERSION) -> PolicySpec:
    return PolicySpec(name="model", slot=PolicySlot(model_policy_bytes(onnx, version)))


def test_replay_reproduces_live_decisions_and_features(live, onnx):
    worker, path = live
    start, end = window(worker)
    hist = history_of(path, start, end)
    live_in_window = {s: d for s, d in worker.decisions.items() if d.ts_event >= start}
    assert len(live_in_window) > 20 and any(d.policy == "MODEL" for d in live_in_window.values())
    result = run_policy(hist, model_spec(onnx), SMAP)
    assert set(result.signal_ids) == set(live_in_window)
    report = check_parity(result, hist)
    assert report.compared == len(live_in_window), report.summary()
    assert report.ok(), report.summary()
    assert report.max_abs_diff == 0.0
    # the account features were live-relevant: some signal saw open risk or a closed trade
    assert any(f.features["acct_open_risk_r"] > 0 for f in result.features.values())
    assert any(f.features["strat_n_trades"] > 0 for f in result.features.values())


def test_another_model_is_detected_as_a_mismatch(live):
    worker, path = live
    start, end = window(worker)
    hist = history_of(path, start, end)
    other = run_policy(hist, model_spec(tiny_model(seed=8)), SMAP)  # same version name, other weights
    report = check_parity(other, hist)
    assert report.mismatches and not report.ok()
    assert any(n.startswith("acct_") for n in report.feature_diffs)  # its own sizes feed its account
    assert "account (open decisions and closed trades of the symbol) differs" in report.summary()


def test_a_bar_missing_from_the_warehouse_is_reported_with_its_reason(live, onnx, tmp_path):
    worker, path = live
    start, end = window(worker)
    hist = history_of(path, start, end)
    first = min((d for d in worker.decisions.values() if d.ts_event >= start), key=lambda d: d.ts_event)
    copy = tmp_path / "wh.duckdb"
    copy.write_bytes(path.read_bytes())
    con = duckdb.connect(str(copy))
    con.execute("DELETE FROM bars WHERE ts_event = ?", [first.ts_event.replace(tzinfo=None)])
    con.close()
    broken = history_of(copy, start, end)
    assert len(broken.events) == len(hist.events) - 1
    report = check_parity(run_policy(broken, model_spec(onnx), SMAP), broken)
    bar_diffs = [
        n for n in report.feature_diffs if not n.startswith(("strat_", "acct_", "sig_", "tod_", "dow_", "fam_"))
    ]
    assert bar_diffs, report.summary()
    assert "bar state differs" in report.summary()


def test_same_inputs_give_the_same_numbers(live, onnx, tmp_path):
    worker, path = live
    start, end = window(worker, 0.3)
    outs = []
    for i in range(2):
        hist = history_of(path, start, end)
        res = backtest(hist, [fixed_policy(), rules_policy(), model_spec(onnx)], SMAP, n_boot=50)
        outs.append((text_report(res), [(r.run.multiplier.tobytes(), r.run.reward.tobytes()) for r in res.results]))
        html = write_html(res, tmp_path / f"r{i}.html")
        assert html.read_text().count("<img") == 3
    assert outs[0] == outs[1]
    assert "rules" in outs[0][0] and "MeanReversion" in outs[0][0]


def test_fixed_policy_scores_recorded_outcomes_at_size_one(live):
    worker, path = live
    start, end = window(worker, 0.3)
    hist = history_of(path, start, end)
    res = backtest(hist, [fixed_policy(), rules_policy()], SMAP, n_boot=20)
    fixed, rules = res.results
    assert np.all(fixed.run.multiplier == 1.0)
    con = duckdb.connect(str(path), read_only=True)
    expected = con.execute(
        """SELECT sum(o.r_multiple - o.fees / (CASE WHEN abs(o.entry_price - s.stop_price) > 0
                  THEN abs(o.entry_price - s.stop_price) ELSE s.atr END * o.qty)), count(*)
           FROM outcomes o JOIN signals s USING (signal_id) WHERE s.ts_event >= ?""",
        [start.replace(tzinfo=None)],
    ).fetchone()
    con.close()
    assert fixed.overall is not None and fixed.overall.n_trades == expected[1]
    assert fixed.overall.total_return == pytest.approx(expected[0], rel=1e-12)
    # the rules size differently, on the same trades
    assert rules.overall is not None and rules.overall.n_trades == expected[1]
    assert not np.allclose(rules.run.multiplier, 1.0)
    assert set(fixed.by_family) and sum(m.n_trades for m in fixed.by_family.values()) == expected[1]


def test_a_model_swapped_live_mid_window_replays_exactly_with_the_live_policy(onnx, tmp_path):
    worker = PureWorker(slot=PolicySlot(), swap_at=350, later=model_policy_bytes(onnx, VERSION))
    run(FRAME.iloc[:450], RunConfig(symbol="AAPL", interval="1d", run_id="sw"), worker, progress=False)
    path = worker.write_warehouse(tmp_path / "w.duckdb")
    start, end = window(worker, 0.5)
    hist = history_of(path, start, end)
    in_window = [d for d in worker.decisions.values() if d.ts_event >= start]
    rules_live = sum(1 for d in in_window if d.model_version is None)
    assert 0 < rules_live < len(in_window)
    # the model alone: comparable only until the first signal the rules decided (then the account differs)
    report = check_parity(run_policy(hist, model_spec(onnx), SMAP), hist)
    assert report.other_policy >= rules_live and report.ok(), report.summary()
    # each signal by the policy that decided it live: every one compared, all equal
    registry = _OneModel(onnx)
    live = check_parity(run_policy(hist, live_policy(registry), SMAP), hist)
    assert live.compared == len(in_window) and live.ok(), live.summary()
    assert registry.fetched == [VERSION]


class _OneModel:
    """What ``live_policy`` asks of a registry, for the one tiny model."""

    def __init__(self, onnx: bytes) -> None:
        self.onnx, self.fetched = onnx, []

    def fetch_verified(self, version: str):
        from types import SimpleNamespace

        self.fetched.append(version)
        return self.onnx, SimpleNamespace(feature_set=FEATURE_SET, feature_names=FEATURE_NAMES, version=version)


def test_errors_are_clear():
    with pytest.raises(BacktestError, match="distinct"):
        backtest(None, [fixed_policy(), fixed_policy()], SMAP)  # type: ignore[arg-type]
    with pytest.raises(BacktestError, match="no policy"):
        backtest(None, [], SMAP)  # type: ignore[arg-type]


def test_decisions_are_first_recorded(live):
    worker, path = live
    start, end = window(worker)
    hist = history_of(path, start, end)
    assert all(isinstance(d, SizeDecided) for d in hist.decisions.values())
    assert hist.window_ids <= set(hist.decisions)
