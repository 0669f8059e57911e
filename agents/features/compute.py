"""All ``fs1`` features of one signal, point-in-time.

``compute_features`` reads only what was known at the signal's ``ts_event``:
the last ``FEATURE_BARS`` bars with ``ts_event <= signal.ts_event``, trades closed by then, decisions
made by then. The result has exactly the keys of ``FEATURE_NAMES`` in that
order, every value a finite float (neutral when not computable).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import repeat
from typing import Final

import numpy as np

from agents.features.bars import bar_features
from agents.features.catalog import FEATURE_LIMIT, FEATURE_NAMES, FEATURE_NEUTRAL
from agents.features.window import FEATURE_BARS, SymbolState
from agents.state import AccountState, StrategyHistory, account_features, history_features
from agents.strategy_map import FAMILIES
from agents.timestamps import DAY_US, to_micros
from schemas.events import SignalRaised

_TAU = 2.0 * math.pi


def signal_features(signal: SignalRaised, *, last_close: float, bar_atr: float) -> dict[str, float]:
    """``sig_*`` features: the signal's own numbers, relative to its price and ATR."""
    price, atr = signal.price, signal.atr
    stop = abs(price - signal.stop_price) if signal.stop_price is not None else math.nan
    target = abs(signal.target_price - price) if signal.target_price is not None else math.nan
    return {
        "sig_q_score": float(signal.q_score),
        "sig_score": float(signal.score),
        "sig_atr_pct": atr / price,
        "sig_side": 1.0 if signal.side == "BUY" else -1.0,
        "sig_stop_dist_atr": stop / atr if atr > 0 else math.nan,
        "sig_target_dist_atr": target / atr if atr > 0 else math.nan,
        "sig_reward_risk": target / stop if stop > 0 else math.nan,
        "sig_price_gap": price / last_close - 1.0 if last_close > 0 else math.nan,
        "sig_atr_vs_bars": atr / bar_atr if bar_atr > 0 else math.nan,
    }


def time_features(ts_us: int) -> dict[str, float]:
    """Time of day and day of week (UTC) on the unit circle."""
    day = (ts_us % DAY_US) / DAY_US
    weekday = ((ts_us // DAY_US) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return {
        "tod_sin": math.sin(_TAU * day),
        "tod_cos": math.cos(_TAU * day),
        "dow_sin": math.sin(_TAU * weekday / 7.0),
        "dow_cos": math.cos(_TAU * weekday / 7.0),
    }


def family_features(family: str) -> dict[str, float]:
    if family not in FAMILIES:
        raise ValueError(f"unknown strategy family {family!r}; families are {', '.join(FAMILIES)}")
    return {f"fam_{f}": 1.0 if f == family else 0.0 for f in FAMILIES}


def compute_features(
    signal: SignalRaised,
    *,
    symbol_state: SymbolState | None,
    history: StrategyHistory,
    account: AccountState,
    family: str,
) -> dict[str, float]:
    """The ``fs1`` feature mapping of ``signal`` (ordered as ``FEATURE_NAMES``)."""
    at = to_micros(signal.ts_event)
    bars: dict[str, float] = {"bars_available": 0.0}
    if symbol_state is not None:
        if symbol_state.symbol != signal.symbol:
            raise ValueError(f"signal for {signal.symbol!r} given the bar state of {symbol_state.symbol!r}")
        bars = symbol_state.derived(bar_features, at, limit=FEATURE_BARS)  # read only below
    raw = {
        **bars,
        **signal_features(
            signal,
            last_close=bars.get("close", math.nan),
            bar_atr=bars.get("atr_14", math.nan),
        ),
        **time_features(at),
        **family_features(family),
        **history_features(history, at),
        **account_features(account, at),
    }
    return clean_features(raw)


_NEUTRALS: Final = np.array([FEATURE_NEUTRAL[name] for name in FEATURE_NAMES], dtype=np.float64)


def clean_features(raw: Mapping[str, float]) -> dict[str, float]:
    """``FEATURE_NAMES`` -> float: missing or non-finite -> the feature's neutral value, the rest clipped to
    +-``FEATURE_LIMIT`` (element-wise ``min(max(float(v), -L), L)``; neutral values are not clipped)."""
    values = np.fromiter(map(raw.get, FEATURE_NAMES, repeat(math.nan)), dtype=np.float64, count=len(FEATURE_NAMES))
    missing = ~np.isfinite(values)
    np.clip(values, -FEATURE_LIMIT, FEATURE_LIMIT, out=values)
    values[missing] = _NEUTRALS[missing]
    return dict(zip(FEATURE_NAMES, values.tolist()))
