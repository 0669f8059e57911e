"""A policy replayed by the trainer's environment equals its ``rlsizer backtest``, signal by signal, to the bit.

Recorded history from the worker's pure functions (rules, then a model swapped in live); each
window is backtested (``trainer.backtest.run.run_policy`` over ``load_history(start, end)``) and
replayed (``trainer.learning.environment.replay`` over the same window of the whole history's rows).
"""

from __future__ import annotations

import numpy as np
import pytest

from agents.sizing import PolicySlot
from tests.unit.trainer.backtest_live import model_policy_bytes, tiny_model
from tests.unit.trainer.recorded import SMAP, Recorded, day_after, record, utc
from trainer.backtest.logged_signals import load_logged_signals
from trainer.backtest.run import PolicySpec, fixed_policy, rules_policy, run_policy
from trainer.evaluation.baselines import FixedPolicy, RulePolicy, ServedModel
from trainer.learning.environment import ACCOUNT_FEATURES, LoggedSignals, replay


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record(tmp_path_factory.mktemp("wh") / "warehouse.duckdb")


@pytest.fixture(scope="module")
def data(recorded: Recorded) -> LoggedSignals:
    con = recorded.connect()
    try:
        return load_logged_signals(con, SMAP)
    finally:
        con.close()


def policies():
    other = model_policy_bytes(tiny_model(seed=8), "v-other")
    return [
        (fixed_policy(), FixedPolicy()),
        (PolicySpec(name="half", fixed=0.5), FixedPolicy(0.5, name="half")),
        (rules_policy(), RulePolicy()),
        (PolicySpec(name="model", slot=PolicySlot(other)), ServedModel(other)),
    ]


@pytest.mark.parametrize("frac", [0.0, 0.35, 0.8])
def test_every_policy_replays_exactly_as_backtested(recorded: Recorded, data: LoggedSignals, frac: float) -> None:
    start = utc(data.ts[int(frac * (len(data) - 1))])
    end = day_after(data.ts[-1])
    history = recorded.history(start, end)
    window = data.window(start, end)
    assert len(window) > 50
    for spec, policy in policies():
        run = run_policy(history, spec, SMAP)
        m = policy.multipliers(window)
        assert tuple(s.signal_id for s in window.signals) == run.signal_ids
        np.testing.assert_array_equal(m, run.multiplier, err_msg=spec.name)
        out = replay(window, lambda obs, rows, m=m: m[rows])
        for name in ACCOUNT_FEATURES:
            got = out.observations[:, window.feature_names.index(name)]
            np.testing.assert_array_equal(
                got, [run.features[s].features[name] for s in run.signal_ids], err_msg=f"{spec.name} {name}"
            )
        np.testing.assert_array_equal(window.scored, run.scored)
        np.testing.assert_array_equal(out.rewards[window.scored], run.reward[run.scored], err_msg=spec.name)


def test_the_account_features_are_not_trivial(data: LoggedSignals) -> None:
    out = replay(data, lambda obs, rows: np.full(rows.size, 1.5))
    col = {n: out.observations[:, data.feature_names.index(n)] for n in ACCOUNT_FEATURES}
    assert (col["acct_open_risk_r"] >= 3.0).any()  # several trades open at once, each at 1.5
    assert (col["acct_session_trades"] > 0).any() and (col["acct_drawdown_r"] > 0).any()
    live = {d.policy for d in data.account.live}
    assert {"RULES", "MODEL"} <= live  # the model was swapped in live part-way
