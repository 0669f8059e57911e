from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.sizing import rule_multiplier

NAMES = (
    "sig_q_score",
    "sig_atr_pct",
    "atr_pct_14",
    "strat_n_trades",
    "strat_win_rate",
    "strat_mean_r",
    "acct_drawdown_r",
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(NAMES), st.floats(allow_nan=True, allow_infinity=True)))
def test_rule_multiplier_always_in_bounds(features: dict[str, float]) -> None:
    multiplier, reason = rule_multiplier(features)
    assert math.isfinite(multiplier) and 0.25 <= multiplier <= 2.0
    assert reason.startswith(f"rules {multiplier:.2f}")


def test_quality_scales_up_and_down() -> None:
    base = {"sig_atr_pct": 0.02}
    assert rule_multiplier(base)[0] == 1.0
    high, why = rule_multiplier({**base, "sig_q_score": 0.9})
    low, why_low = rule_multiplier({**base, "sig_q_score": 0.2})
    assert high > 1.0 > low
    assert "high signal quality" in why and "low signal quality" in why_low


def test_volatility_scales_toward_target() -> None:
    calm, _ = rule_multiplier({"sig_atr_pct": 0.015})
    wild, why = rule_multiplier({"sig_atr_pct": 0.04})
    assert calm > 1.0 > wild == 0.5
    assert "above target" in why
    # the bar ATR is the fallback when the signal carried none
    assert rule_multiplier({"sig_atr_pct": 0.0, "atr_pct_14": 0.04})[0] == 0.5


def test_strategy_history_only_counts_after_five_trades() -> None:
    good = {"sig_atr_pct": 0.02, "strat_win_rate": 0.7, "strat_mean_r": 0.6}
    assert rule_multiplier({**good, "strat_n_trades": 4})[0] == 1.0
    up, why = rule_multiplier({**good, "strat_n_trades": 12})
    assert up > 1.0 and "12 trades, 70% winners" in why
    down, _ = rule_multiplier({**good, "strat_n_trades": 12, "strat_win_rate": 0.2, "strat_mean_r": -0.8})
    assert down < 1.0


def test_clamped_and_explained() -> None:
    m, why = rule_multiplier(
        {"sig_q_score": 0.95, "sig_atr_pct": 0.001, "strat_n_trades": 50, "strat_win_rate": 0.9, "strat_mean_r": 2.0}
    )
    assert m == 2.0 and "clamped" in why
    m, why = rule_multiplier({"sig_q_score": 0.1, "sig_atr_pct": 0.5, "acct_drawdown_r": 5.0})
    assert m == 0.25 and "drawdown" in why
