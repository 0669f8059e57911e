"""TrainingSet -> LoggedSignals: missing features take the live code's neutral values."""

from __future__ import annotations

import numpy as np

from agents.features import FEATURE_NAMES, FEATURE_NEUTRAL, FEATURE_SET
from trainer.dataset import TrainingSet
from trainer.logged_signals import neutral_values, served_feature_names, to_logged_signals


def training_set(features: np.ndarray, names: tuple[str, ...]) -> TrainingSet:
    n = features.shape[0]
    ts = np.datetime64("2024-01-01T10:00", "us") + np.arange(n).astype("timedelta64[m]").astype("timedelta64[us]")
    return TrainingSet(feature_names=names, features=features.astype(np.float32), r_multiple=np.linspace(-1, 1, n),
                       cost_r=np.full(n, 0.01), episode_id=np.zeros(n, dtype=np.int64), family=np.array(["Breakout"] * n),
                       ts=ts, signal_id=np.array([f"s{i}" for i in range(n)]), multiplier=np.ones(n),
                       policy=np.array(["RULES"] * n))


def test_missing_values_take_the_neutral_value_of_their_feature() -> None:
    names = ("acct_session_pnl_r", "acct_drawdown_r", "acct_open_risk_r", "rsi_14", "unknown_feature")
    raw = np.array([[0.0, 0.0, 0.0, np.nan, np.nan], [1.0, 0.5, 1.0, 0.7, 3.0]])
    data = to_logged_signals(training_set(raw, names), neutral=neutral_values(FEATURE_SET))
    np.testing.assert_allclose(data.features[0], [0.0, 0.0, 0.0, FEATURE_NEUTRAL["rsi_14"], 0.0])
    np.testing.assert_allclose(data.features[1], raw[1].astype(np.float32))
    np.testing.assert_allclose(data.r_multiple, [-1.0, 1.0])
    assert FEATURE_NEUTRAL["rsi_14"] != 0.0  # otherwise this test could not tell neutral from zero


def test_the_served_feature_set_pins_the_serving_column_order() -> None:
    assert served_feature_names(FEATURE_SET) == FEATURE_NAMES
    assert served_feature_names("other") is None and neutral_values("other") == {}
