"""Reference strategies: they fire where they should, never read a later bar, and emit sane values."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.strategy_map import DEFAULT_STRATEGY_MAP, FAMILIES
from rlsizer.reference.data import load_dataset
from rlsizer.reference.strategies import MAX_LOOKBACK, STRATEGIES, TRIGGERS, StrategySpec, evaluate, scan

S1 = next(s for s in STRATEGIES if s.strategy_id == "S1")


def bars_from_close(close: np.ndarray, spread: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return close + spread, close - spread, close


def test_fourteen_strategies_in_four_families() -> None:
    ids = [s.strategy_id for s in STRATEGIES]
    assert ids == [f"S{i}" for i in range(1, 15)]
    fam = {s.strategy_id: s.family for s in STRATEGIES}
    assert {fam["S1"], fam["S3"]} == {"EmaCross"} and {fam["S4"], fam["S7"]} == {"MeanReversion"}
    assert {fam["S8"], fam["S11"]} == {"Breakout"} and {fam["S12"], fam["S14"]} == {"Momentum"}


def test_the_bot_and_the_sizer_agree_on_families() -> None:
    # two parties' definitions (the bot's strategies, the sizer's default map for them): they must agree
    assert {s.strategy_id: s.family for s in STRATEGIES} == dict(DEFAULT_STRATEGY_MAP)
    assert set(TRIGGERS) == set(FAMILIES)


def test_ema_cross_fires_buy_on_the_upward_cross_only() -> None:
    close = np.concatenate([np.linspace(120, 100, 80), np.linspace(100, 130, 40)])
    h, l, c = bars_from_close(close)
    fired = [(t, s.side) for t, sigs in enumerate(scan(h, l, c, (S1,))) for s in sigs]
    assert len(fired) == 1 and fired[0][1] == "BUY"
    t = fired[0][0]
    assert 80 < t < 95  # shortly after the low at bar 79, not before it


def test_ema_cross_fires_sell_on_the_downward_cross() -> None:
    close = np.concatenate([np.linspace(100, 120, 80), np.linspace(120, 90, 40)])
    sides = [s.side for sigs in scan(*bars_from_close(close), (S1,)) for s in sigs]
    assert sides == ["SELL"]


def test_breakout_fires_when_close_leaves_the_previous_channel() -> None:
    spec = StrategySpec("B", "Breakout", (10,), 2.0, 3.0, 10)
    close = np.full(60, 100.0)
    close[-1] = 103.0
    h, l, c = bars_from_close(close)
    h[-1] = 103.5
    sigs = evaluate(h, l, c, (spec,))
    assert [s.side for s in sigs] == ["BUY"]
    assert sigs[0].stop_price < 103.0 < sigs[0].target_price
    assert evaluate(h[:-1], l[:-1], c[:-1], (spec,)) == []


def test_values_on_real_data_are_consistent() -> None:
    frame = load_dataset("MSFT").iloc[:800]
    h, l, c = (frame[k].to_numpy() for k in ("high", "low", "close"))
    all_signals = [(t, s) for t, sigs in enumerate(scan(h, l, c)) for s in sigs]
    assert {s.strategy_id for _, s in all_signals} == {f"S{i}" for i in range(1, 15)}
    for t, s in all_signals:
        assert s.price == c[t]
        assert 0.0 <= s.q_score <= 1.0 and s.atr > 0
        spec = next(x for x in STRATEGIES if x.strategy_id == s.strategy_id)
        sign = 1 if s.side == "BUY" else -1
        assert np.isclose(sign * (s.price - s.stop_price), spec.stop_atr * s.atr)
        assert np.isclose(sign * (s.target_price - s.price), spec.target_atr * s.atr)


def test_only_the_last_window_is_read() -> None:
    frame = load_dataset("IBM")
    h, l, c = (frame[k].to_numpy() for k in ("high", "low", "close"))
    for t in (MAX_LOOKBACK + 50, 1500, 3000):
        full = evaluate(h[: t + 1], l[: t + 1], c[: t + 1])
        window = evaluate(
            h[t + 1 - MAX_LOOKBACK : t + 1], l[t + 1 - MAX_LOOKBACK : t + 1], c[t + 1 - MAX_LOOKBACK : t + 1]
        )
        assert full == window


@settings(max_examples=15, deadline=None)
@given(cut=st.integers(min_value=50, max_value=450), seed=st.integers(0, 2**32 - 1))
def test_no_strategy_uses_a_future_bar(cut: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 500)))
    high, low = close * (1 + rng.uniform(0, 0.01, 500)), close * (1 - rng.uniform(0, 0.01, 500))
    base = scan(high, low, close)
    noise = rng.uniform(0.5, 1.5, 500 - cut)
    h2, l2, c2 = high.copy(), low.copy(), close.copy()
    h2[cut:], l2[cut:], c2[cut:] = high[cut:] * noise * 1.02, low[cut:] * noise * 0.98, close[cut:] * noise
    perturbed = scan(h2, l2, c2)
    assert perturbed[:cut] == base[:cut]
    assert perturbed[cut:] != base[cut:]  # the perturbation is visible, so the check above can fail


def test_a_stop_or_target_is_never_on_the_wrong_side_of_the_price() -> None:
    """An ATR too small to move a large price in floating point would put the stop at the price: no signal then."""
    from schemas.events import SignalRaised

    spec = StrategySpec("B", "Breakout", (10,), 2.0, 3.0, 10)
    close = np.full(60, 1e17)
    close[-1] = 1e17 + 16  # one ulp up: a breakout, with an ATR of about 1.1
    h, l, c = bars_from_close(close)
    assert evaluate(h, l, c, (spec,)) == []
    frame = load_dataset("MSFT").iloc[:800]
    h, l, c = (frame[k].to_numpy() for k in ("high", "low", "close"))
    for s in (s for sigs in scan(h, l, c) for s in sigs):  # every one is a valid SignalRaised
        SignalRaised(
            ts_event=frame.index[0].to_pydatetime(),
            signal_id="s",
            strategy_id=s.strategy_id,
            symbol="MSFT",
            side=s.side,
            price=s.price,
            atr=s.atr,
            base_qty=1.0,
            stop_price=s.stop_price,
            target_price=s.target_price,
        )
