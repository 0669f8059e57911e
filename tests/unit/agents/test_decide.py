from __future__ import annotations

import pytest

from agents.features import FEATURE_NAMES
from agents.sizing import WARMUP_BARS, PolicySlot, decide, load_policy, rule_multiplier
from tests.unit.agents.market import signal
from tests.unit.agents.tiny_onnx import sizing_model

COLS = ("sig_q_score", "sig_atr_pct", "bars_available")


def _features(**overrides: float) -> dict[str, float]:
    f = {name: 0.0 for name in FEATURE_NAMES}
    f.update(sig_q_score=0.9, sig_atr_pct=0.02, bars_available=200.0)
    f.update(overrides)
    return f


def test_rules_when_no_model_is_loaded() -> None:
    result = decide(signal(), _features(), PolicySlot())
    assert result.policy == "RULES" and result.model_version is None
    assert result.multiplier == rule_multiplier(_features())[0] == 1.5
    assert "no model loaded" in result.reason and "high signal quality" in result.reason


def test_model_when_loaded_and_working() -> None:
    slot = PolicySlot(load_policy(sizing_model(3), feature_names=COLS, version="m-3"))
    result = decide(signal(), _features(bars_available=40.0, sig_q_score=0.0, sig_atr_pct=0.0), slot)
    assert result.policy == "MODEL" and result.model_version == "m-3"
    # mean of (0, 0, 40) = 13.3 -> sigmoid ~ 1 -> just below 2.0; the rules would say 1.0
    assert 1.99 < result.multiplier <= 2.0


def test_fallback_when_no_bars_yet_even_with_a_model() -> None:
    slot = PolicySlot(load_policy(sizing_model(3), feature_names=COLS, version="m-3"))
    result = decide(signal(symbol="AAPL"), _features(bars_available=0.0), slot)
    assert result.policy == "FALLBACK"
    assert "no bars yet for AAPL" in result.reason
    assert result.multiplier == 1.0  # rules say 1.5, the fallback never sizes up
    few = decide(signal(), _features(bars_available=float(WARMUP_BARS - 1), sig_q_score=0.2), PolicySlot())
    assert few.policy == "FALLBACK" and f"only {WARMUP_BARS - 1} of {WARMUP_BARS}" in few.reason
    assert few.multiplier == pytest.approx(0.6)


def test_fallback_when_inference_fails() -> None:
    slot = PolicySlot(load_policy(sizing_model(3), feature_names=("sig_q_score", "not_a_feature", "x"), version="m-4"))
    result = decide(signal(), _features(), slot)
    assert result.policy == "FALLBACK" and result.model_version == "m-4"
    assert "model m-4 failed" in result.reason and "not_a_feature" in result.reason
    assert 0.25 <= result.multiplier <= 1.0
