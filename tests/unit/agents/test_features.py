from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.features import FEATURE_DOCS, FEATURE_NAMES, FEATURE_NEUTRAL, FEATURE_SET, compute_features
from agents.state import AccountState, StrategyHistory
from agents.strategy_map import FAMILIES
from schemas.events import BarClosed
from tests.unit.agents.market import T0, aapl_bars, bar, signal, state_of

N = 400  # AAPL bars used


def _features(bars, sig=None, family: str = "EmaCross") -> dict[str, float]:
    sig = sig or signal(bars[-1].ts_event if bars else T0, price=bars[-1].close if bars else 100.0)
    return compute_features(
        sig, symbol_state=state_of(bars), history=StrategyHistory("S1"), account=AccountState(), family=family
    )


def test_catalog_has_60_plus_documented_names() -> None:
    assert FEATURE_SET == "fs1"
    assert len(FEATURE_NAMES) >= 60
    assert set(FEATURE_DOCS) == set(FEATURE_NAMES) == set(FEATURE_NEUTRAL)
    assert all(doc.strip() for doc in FEATURE_DOCS.values())
    for name in (
        "sig_q_score",
        "sig_score",
        "sig_atr_pct",
        "sig_side",
        "strat_win_rate",
        "strat_mean_r",
        "strat_streak",
        "strat_n_trades",
        "acct_session_pnl_r",
        "acct_drawdown_r",
        "acct_open_risk_r",
        "bars_available",
        "has_quotes",
    ):
        assert name in FEATURE_NAMES


def test_every_feature_finite_on_real_data_at_every_bar() -> None:
    bars = aapl_bars()[:N]
    state = None
    non_neutral = set()
    for i, b in enumerate(bars):
        state = _on_bar(state, b)
        if i % 7:
            continue
        f = compute_features(
            signal(b.ts_event, price=b.close),
            symbol_state=state,
            history=StrategyHistory("S1"),
            account=AccountState(),
            family="Breakout",
        )
        assert tuple(f) == FEATURE_NAMES
        bad = {k: v for k, v in f.items() if not (isinstance(v, float) and math.isfinite(v))}
        assert not bad, f"bar {i}: {bad}"
        non_neutral |= {k for k, v in f.items() if v != FEATURE_NEUTRAL[k]}
    # on a full window the bar indicators are really computed, not left neutral
    for name in ("rsi_14", "macd_hist", "adx_14", "bb_pctb_20", "rv_60", "ret_60", "ema_dist_100", "donchian_pos_55"):
        assert name in non_neutral


def test_warm_up_and_no_bars_give_neutral_finite_values() -> None:
    empty = compute_features(
        signal(), symbol_state=None, history=StrategyHistory("S1"), account=AccountState(), family="Momentum"
    )
    assert empty["bars_available"] == 0.0
    assert all(math.isfinite(v) for v in empty.values())
    assert empty["rsi_14"] == 0.5 and empty["ret_1"] == 0.0 and empty["fam_Momentum"] == 1.0
    three = _features(aapl_bars()[:3])
    assert three["bars_available"] == 3.0 and three["rsi_14"] == 0.5 and three["ret_1"] != 0.0
    assert all(math.isfinite(v) for v in three.values())


def test_indicators_match_talib_on_the_full_series() -> None:
    bars = aapl_bars()
    close = np.array([b.close for b in bars])
    high = np.array([b.high for b in bars])
    low = np.array([b.low for b in bars])
    rsi = talib.RSI(close, timeperiod=14)
    atr = talib.ATR(high, low, close, timeperiod=14)
    for i in (299, 1000, 3000):
        f = _features(bars[: i + 1])
        # Bollinger %b from numpy, independently of TA-Lib
        last20 = close[i - 19 : i + 1]
        mid, sd = last20.mean(), last20.std()
        assert f["bb_pctb_20"] == pytest.approx((close[i] - (mid - 2 * sd)) / (4 * sd), rel=1e-9)
        assert f["ret_20"] == pytest.approx(math.log(close[i] / close[i - 20]), rel=1e-12)
        # Wilder smoothing over a 200-bar window matches the full-history value to ~1e-6
        assert f["rsi_14"] == pytest.approx(rsi[i] / 100, abs=1e-5)
        assert f["atr_pct_14"] == pytest.approx(atr[i] / close[i], rel=1e-5)


def test_signal_family_and_time_features() -> None:
    f = _features(
        aapl_bars()[:100],
        signal(T0, side="SELL", price=50.0, atr=1.0, stop_price=52.0, target_price=44.0, q_score=0.9),
        family="MeanReversion",
    )
    assert f["sig_side"] == -1.0 and f["sig_atr_pct"] == pytest.approx(0.02)
    assert f["sig_stop_dist_atr"] == pytest.approx(2.0) and f["sig_reward_risk"] == pytest.approx(3.0)
    assert [f[f"fam_{x}"] for x in FAMILIES] == [0.0, 1.0, 0.0, 0.0]
    # T0 is Tuesday 14:30 UTC
    assert f["dow_sin"] == pytest.approx(math.sin(2 * math.pi / 7))
    assert f["tod_sin"] == pytest.approx(math.sin(2 * math.pi * 14.5 / 24))


def test_quote_features_only_with_quotes() -> None:
    bars = [bar(T0 + timedelta(days=i), close=100 + i) for i in range(30)]
    without = _features(bars)
    assert without["has_quotes"] == 0.0 and without["spread_bps"] == 0.0
    quoted = [*bars[:-1], replace(bars[-1], bid=128.9, ask=129.1, bid_size=30.0, ask_size=10.0)]
    with_q = _features(quoted)
    assert with_q["has_quotes"] == 1.0
    assert with_q["spread_bps"] == pytest.approx(0.2 / 129.0 * 1e4)
    assert with_q["book_imbalance"] == pytest.approx(0.5)


# -- point in time ---------------------------------------------------------------------------


def test_bars_after_the_signal_do_not_change_its_features() -> None:
    bars = list(aapl_bars()[:300])
    k = 250
    sig = signal(bars[k].ts_event + timedelta(hours=1), price=bars[k].close)
    before = _features(bars[: k + 1], sig)
    perturbed = bars[: k + 1] + [
        replace(b, close=b.close * 3, high=b.high * 3, volume=b.volume * 9) for b in bars[k + 1 :]
    ]
    after = _features(perturbed, sig)
    assert after == before
    # ...while a change at or before the signal does change them (the test can fail)
    changed = [*bars[:k], replace(bars[k], close=bars[k].close * 1.05, high=bars[k].high * 1.05)]
    assert _features(changed, sig) != before


def _random_bars(draw_closes: list[float]) -> list[BarClosed]:
    return [bar(T0 + timedelta(hours=i), close=c, volume=1000.0 + 10 * i) for i, c in enumerate(draw_closes)]


@settings(max_examples=20, deadline=None)
@given(
    closes=st.lists(st.floats(min_value=1.0, max_value=1000.0), min_size=2, max_size=90),
    cut=st.integers(min_value=0, max_value=88),
    future=st.lists(st.floats(min_value=1.0, max_value=1000.0), min_size=1, max_size=30),
    offset_minutes=st.integers(min_value=0, max_value=59),
)
def test_features_never_read_a_bar_after_the_signal(closes, cut, future, offset_minutes) -> None:
    cut = min(cut, len(closes) - 1)
    bars = _random_bars(closes)
    sig = signal(bars[cut].ts_event + timedelta(minutes=offset_minutes), price=closes[cut])
    base = _features(bars[: cut + 1], sig)
    # replace the bars after the signal with anything, and add more
    tail = [bar(T0 + timedelta(hours=cut + 1 + j), close=c, volume=7.0) for j, c in enumerate(future)]
    assert _features(bars[: cut + 1] + tail, sig) == base


def test_bar_features_cleaned_once_per_bar_equal_cleaning_everything_at_once() -> None:
    """compute_features cleans the bar part per bar and the rest per signal: same as clean_features(all raw)."""
    from agents.features.bars import bar_features
    from agents.features.compute import (
        BAR_FEATURE_NAMES,
        account_features,
        clean_features,
        family_features,
        history_features,
        signal_features,
        time_features,
    )
    from agents.features.window import FEATURE_BARS
    from agents.state import apply_decision
    from agents.timestamps import to_micros
    from tests.unit.agents.market import decision

    bars = aapl_bars()[:250]
    state = state_of(bars)
    account = apply_decision(AccountState(), decision("earlier", bars[-2].ts_event, 1.5))
    for b in bars[-40::3]:
        sig = signal(b.ts_event, price=b.close * 1.01)
        at = to_micros(sig.ts_event)
        raw_bars = bar_features(state.bars_until(at, limit=FEATURE_BARS))
        assert not set(raw_bars) & (set(FEATURE_NAMES) - set(BAR_FEATURE_NAMES))  # the parts do not overlap
        raw = {
            **raw_bars,
            **signal_features(
                sig, last_close=raw_bars.get("close", math.nan), bar_atr=raw_bars.get("atr_14", math.nan)
            ),
            **time_features(at),
            **family_features("Breakout"),
            **history_features(StrategyHistory("S1"), at),
            **account_features(account, at),
        }
        got = compute_features(
            sig, symbol_state=state, history=StrategyHistory("S1"), account=account, family="Breakout"
        )
        assert list(got.items()) == list(clean_features(raw).items())


def _on_bar(state, bar):
    """The bar state after ``bar`` (as a symbol's book keeps it)."""
    from agents.features import SymbolState

    return (state or SymbolState.empty_for(bar)).updated(bar)
