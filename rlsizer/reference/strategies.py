"""Reference strategies S1..S14 in the four families, computed with TA-Lib.

Each strategy is a pure function of the bars seen so far (arrays ending at the
bar just closed): it never receives a later bar, and TA-Lib's indicators are
causal, so a signal at bar t depends only on bars <= t (a test perturbs later bars
to prove it). Signals fire on a *cross* (the condition became true at t), so a
trend does not fire on every bar.

Every signal carries side, price (the close), ATR(14), a raw ``score`` (signed,
positive for BUY: distance past the trigger in ATRs or z-units), ``q_score`` in [0, 1] (how far past it,
squashed), and stop / target at the family's ATR multiples from the close, plus the
holding limit in bars used by paper execution. These are plausible, simple
strategies with real variety for the sizer to learn from, not trading advice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import talib

ATR_PERIOD: Final = 14
Trigger = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], "tuple[str, float] | None"]


@dataclass(frozen=True, slots=True)
class StrategySpec:
    strategy_id: str
    family: str
    params: tuple[float, ...]
    stop_atr: float
    target_atr: float
    max_hold_bars: int

    @property
    def lookback(self) -> int:
        """Bars needed for a warm indicator (EMA seeds converge within a few periods)."""
        return int(max(*self.params, ATR_PERIOD)) * 4 + 2


@dataclass(frozen=True, slots=True)
class StrategySignal:
    strategy_id: str
    family: str
    side: str
    price: float
    atr: float
    score: float
    q_score: float
    stop_price: float
    target_price: float
    max_hold_bars: int


def _ema_cross(spec: StrategySpec, h: np.ndarray, l: np.ndarray, c: np.ndarray, atr: float) -> tuple[str, float] | None:
    fast_p, slow_p = int(spec.params[0]), int(spec.params[1])
    fast, slow = talib.EMA(c, fast_p), talib.EMA(c, slow_p)
    d_now, d_prev = fast[-1] - slow[-1], fast[-2] - slow[-2]
    if not (math.isfinite(d_now) and math.isfinite(d_prev)):
        return None
    if d_prev <= 0 < d_now:
        return "BUY", (c[-1] - slow[-1]) / atr
    if d_prev >= 0 > d_now:
        return "SELL", (c[-1] - slow[-1]) / atr
    return None


def _mean_reversion(
    spec: StrategySpec, h: np.ndarray, l: np.ndarray, c: np.ndarray, atr: float
) -> tuple[str, float] | None:
    period, k = int(spec.params[0]), float(spec.params[1])
    mean, std = talib.SMA(c, period), talib.STDDEV(c, period, 1.0)
    if not (std[-1] > 0 and std[-2] > 0):
        return None
    z_now, z_prev = (c[-1] - mean[-1]) / std[-1], (c[-2] - mean[-2]) / std[-2]
    if z_prev >= -k > z_now:
        return "BUY", -z_now
    if z_prev <= k < z_now:
        return "SELL", -z_now
    return None


def _breakout(spec: StrategySpec, h: np.ndarray, l: np.ndarray, c: np.ndarray, atr: float) -> tuple[str, float] | None:
    n = int(spec.params[0])
    upper, lower = talib.MAX(h, n), talib.MIN(l, n)
    # channel of the n bars *before* t, so the bar being tested is not part of its own channel
    up_prev, lo_prev, up_prev2, lo_prev2 = upper[-2], lower[-2], upper[-3], lower[-3]
    if not all(math.isfinite(x) for x in (up_prev, lo_prev, up_prev2, lo_prev2)):
        return None
    if c[-1] > up_prev and not c[-2] > up_prev2:
        return "BUY", (c[-1] - up_prev) / atr
    if c[-1] < lo_prev and not c[-2] < lo_prev2:
        return "SELL", (c[-1] - lo_prev) / atr
    return None


def _momentum(spec: StrategySpec, h: np.ndarray, l: np.ndarray, c: np.ndarray, atr: float) -> tuple[str, float] | None:
    period, k = int(spec.params[0]), float(spec.params[1])
    mom = talib.MOM(c, period)
    scale = atr * math.sqrt(period)
    m_now, m_prev = mom[-1] / scale, mom[-2] / scale
    if not (math.isfinite(m_now) and math.isfinite(m_prev)):
        return None
    if m_prev <= k < m_now:
        return "BUY", m_now
    if m_prev >= -k > m_now:
        return "SELL", m_now
    return None


TRIGGERS: Final[Mapping[str, Callable[..., tuple[str, float] | None]]] = {
    "EmaCross": _ema_cross,
    "MeanReversion": _mean_reversion,
    "Breakout": _breakout,
    "Momentum": _momentum,
}

STRATEGIES: Final[tuple[StrategySpec, ...]] = (
    StrategySpec("S1", "EmaCross", (5, 20), 2.0, 4.0, 20),
    StrategySpec("S2", "EmaCross", (10, 50), 2.0, 4.0, 40),
    StrategySpec("S3", "EmaCross", (20, 100), 2.5, 5.0, 60),
    StrategySpec("S4", "MeanReversion", (10, 1.5), 1.5, 1.5, 10),
    StrategySpec("S5", "MeanReversion", (20, 2.0), 1.5, 2.0, 15),
    StrategySpec("S6", "MeanReversion", (20, 2.5), 2.0, 2.0, 15),
    StrategySpec("S7", "MeanReversion", (50, 2.0), 2.0, 2.5, 25),
    StrategySpec("S8", "Breakout", (10,), 1.5, 3.0, 15),
    StrategySpec("S9", "Breakout", (20,), 2.0, 3.0, 25),
    StrategySpec("S10", "Breakout", (55,), 2.0, 4.0, 40),
    StrategySpec("S11", "Breakout", (100,), 2.5, 5.0, 60),
    StrategySpec("S12", "Momentum", (10, 1.0), 2.0, 3.0, 15),
    StrategySpec("S13", "Momentum", (20, 1.0), 2.0, 4.0, 30),
    StrategySpec("S14", "Momentum", (60, 1.2), 2.5, 5.0, 60),
)

MAX_LOOKBACK: Final = max(s.lookback for s in STRATEGIES)


def q_score(score: float, side: str) -> float:
    """How far past its trigger, in the signal's direction, squashed to [0, 1] (0.5 ATR -> ~0.46)."""
    along = score if side == "BUY" else -score
    return float(1.0 - math.exp(-1.25 * max(0.0, along)))


def evaluate(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, specs: tuple[StrategySpec, ...] = STRATEGIES
) -> list[StrategySignal]:
    """Signals firing at the last bar of the arrays (the bars seen so far, oldest first).

    Only the last ``MAX_LOOKBACK`` bars are read, so passing the whole history or
    just that window gives identical signals (and the cost per bar is bounded).
    """
    h, l, c = (np.ascontiguousarray(a[-MAX_LOOKBACK:], dtype=np.float64) for a in (high, low, close))
    if len(c) < ATR_PERIOD + 2:
        return []
    atr = float(talib.ATR(h, l, c, ATR_PERIOD)[-1])
    if not (math.isfinite(atr) and atr > 0):
        return []
    price = float(c[-1])
    out: list[StrategySignal] = []
    for spec in specs:
        if len(c) < spec.lookback:
            continue
        n = spec.lookback
        fired = TRIGGERS[spec.family](spec, h[-n:], l[-n:], c[-n:], atr)
        if fired is None:
            continue
        side, score = fired
        sign = 1.0 if side == "BUY" else -1.0
        stop, target = price - sign * spec.stop_atr * atr, price + sign * spec.target_atr * atr
        # a stop against the trade and a target with it, both > 0 (``SignalRaised`` refuses anything else);
        # an ATR too small to move the price in floating point would put them *at* the price
        if stop <= 0 or target <= 0 or not (sign * (price - stop) > 0 and sign * (target - price) > 0):
            continue
        out.append(
            StrategySignal(
                strategy_id=spec.strategy_id,
                family=spec.family,
                side=side,
                price=price,
                atr=atr,
                score=float(score),
                q_score=q_score(score, side),
                stop_price=float(stop),
                target_price=float(target),
                max_hold_bars=spec.max_hold_bars,
            )
        )
    return out


def scan(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, specs: tuple[StrategySpec, ...] = STRATEGIES
) -> list[list[StrategySignal]]:
    """Signals at every bar, each computed from the bars up to it only (for backtests and tests)."""
    return [evaluate(high[: t + 1], low[: t + 1], close[: t + 1], specs) for t in range(len(close))]
