"""All ``fs1`` features of one signal, point-in-time.

``compute_features`` reads only what was known at the signal's ``ts_event``:
the last ``FEATURE_BARS`` bars with ``ts_event <= signal.ts_event``, trades closed by then, decisions
made by then. The result has exactly the keys of ``FEATURE_NAMES`` in that
order, every value a finite float (neutral when not computable).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from agents.features.bars import bar_features
from agents.features.catalog import FEATURE_LIMIT, FEATURE_NAMES, FEATURE_NEUTRAL
from agents.features.window import FEATURE_BARS, SymbolState, Window
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
    bars, clean_bars = _NO_BARS
    if symbol_state is not None:
        if symbol_state.symbol != signal.symbol:
            raise ValueError(f"signal for {signal.symbol!r} given the bar state of {symbol_state.symbol!r}")
        bars, clean_bars = symbol_state.derived(_bar_part, at, limit=FEATURE_BARS)  # read only below
    rest = {
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
    return {**clean_bars, **_clean(rest, _REST_SPECS)}


_FIRST_AFTER_BARS: Final = FEATURE_NAMES.index("tod_sin")  # the catalog lists the bar features first
BAR_FEATURE_NAMES: Final = FEATURE_NAMES[:_FIRST_AFTER_BARS]
"""The features ``bar_features`` gives; every other feature comes from the signal, its time, history or account."""
_SPECS: Final = tuple((name, FEATURE_NEUTRAL[name]) for name in FEATURE_NAMES)
_BAR_SPECS: Final = _SPECS[:_FIRST_AFTER_BARS]
_REST_SPECS: Final = _SPECS[_FIRST_AFTER_BARS:]


def clean_features(raw: Mapping[str, float]) -> dict[str, float]:
    """``FEATURE_NAMES`` -> float: missing or non-finite -> the feature's neutral value, the rest clipped to
    +-``FEATURE_LIMIT`` (element-wise ``min(max(float(v), -L), L)``; neutral values are not clipped).

    ``compute_features`` cleans the bar features once per bar and the others at
    each signal; element-wise, that is the same as cleaning them all at once."""
    return _clean(raw, _SPECS)


def _clean(raw: Mapping[str, float], specs: tuple[tuple[str, float], ...]) -> dict[str, float]:
    """``clean_features`` for the ``(name, neutral)`` of ``specs`` only."""
    out = {}
    get, limit = raw.get, FEATURE_LIMIT
    for name, neutral in specs:
        v = get(name)
        if v is None:
            out[name] = neutral
            continue
        v = float(v)
        if v - v == 0.0:  # finite (inf - inf and nan - nan are nan)
            out[name] = v if -limit <= v <= limit else (limit if v > limit else -limit)
        else:
            out[name] = neutral
    return out


def _bar_part(win: Window) -> tuple[dict[str, float], dict[str, float]]:
    """``bar_features(win)`` raw (the signal features read its close and ATR) and cleaned; cached per bar."""
    raw = bar_features(win)
    return raw, _clean(raw, _BAR_SPECS)


_NO_BARS: Final = ({"bars_available": 0.0}, _clean({"bars_available": 0.0}, _BAR_SPECS))
