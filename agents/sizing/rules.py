"""The rule-based multiplier: the baseline the trainer compares against and the fallback.

``rule_multiplier(features)`` multiplies a few bounded factors, each explained
in the returned reason, and clamps the product to [0.25, 2.0]:

- signal quality: q_score > 0.8 sizes up (x1.5), q_score < 0.4 sizes down (x0.6);
- volatility: scale toward a target ATR % of price (``target/atr``, within [0.5, 1.5]);
- strategy history, once it has ``MIN_TRADES`` closed trades: up to +/-30 % from
  its mean R and win rate;
- session drawdown beyond ``DRAWDOWN_LIMIT_R`` halves the size.

A factor whose input is missing or not finite is skipped, never guessed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from schemas.events import MULTIPLIER_MAX, MULTIPLIER_MIN

HIGH_Q: Final = 0.8
LOW_Q: Final = 0.4
HIGH_Q_FACTOR: Final = 1.5
LOW_Q_FACTOR: Final = 0.6
TARGET_ATR_PCT: Final = 0.02
"""Default volatility target: ATR of 2 % of price (daily bars of a liquid stock)."""
VOL_FACTOR_RANGE: Final = (0.5, 1.5)
MIN_TRADES: Final = 5
HISTORY_FACTOR_RANGE: Final = (0.7, 1.3)
DRAWDOWN_LIMIT_R: Final = 3.0
DRAWDOWN_FACTOR: Final = 0.5


def _get(features: Mapping[str, float], name: str) -> float | None:
    value = features.get(name)
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _clip(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def rule_multiplier(features: Mapping[str, float], *, target_atr_pct: float = TARGET_ATR_PCT) -> tuple[float, str]:
    """The rules' multiplier in [0.25, 2.0] and why, in a trader's words."""
    multiplier = 1.0
    why: list[str] = []

    q = _get(features, "sig_q_score")
    if q is not None and q > HIGH_Q:
        multiplier *= HIGH_Q_FACTOR
        why.append(f"x{HIGH_Q_FACTOR:.2f} high signal quality (q={q:.2f} > {HIGH_Q})")
    elif q is not None and q < LOW_Q:
        multiplier *= LOW_Q_FACTOR
        why.append(f"x{LOW_Q_FACTOR:.2f} low signal quality (q={q:.2f} < {LOW_Q})")

    atr_pct = _get(features, "sig_atr_pct")
    if atr_pct is None or atr_pct <= 0:
        atr_pct = _get(features, "atr_pct_14")
    if atr_pct is not None and atr_pct > 0 and target_atr_pct > 0:
        factor = _clip(target_atr_pct / atr_pct, *VOL_FACTOR_RANGE)
        if abs(factor - 1.0) >= 0.01:
            direction = "above" if factor < 1 else "below"
            why.append(
                f"x{factor:.2f} volatility {direction} target (ATR {atr_pct:.2%} of price vs {target_atr_pct:.2%})"
            )
        multiplier *= factor

    n = _get(features, "strat_n_trades")
    win = _get(features, "strat_win_rate")
    mean_r = _get(features, "strat_mean_r")
    if n is not None and n >= MIN_TRADES and win is not None and mean_r is not None:
        factor = _clip(1.0 + 0.5 * mean_r + 0.5 * (win - 0.5), *HISTORY_FACTOR_RANGE)
        if abs(factor - 1.0) >= 0.01:
            tone = "strong" if factor > 1 else "weak"
            why.append(
                f"x{factor:.2f} {tone} recent strategy record ({int(n)} trades, {win:.0%} winners, mean {mean_r:+.2f}R)"
            )
        multiplier *= factor

    drawdown = _get(features, "acct_drawdown_r")
    if drawdown is not None and drawdown > DRAWDOWN_LIMIT_R:
        multiplier *= DRAWDOWN_FACTOR
        why.append(f"x{DRAWDOWN_FACTOR:.2f} session drawdown {drawdown:.1f}R beyond {DRAWDOWN_LIMIT_R:.0f}R")

    clamped = _clip(multiplier, MULTIPLIER_MIN, MULTIPLIER_MAX)
    if clamped != multiplier:
        why.append(f"clamped from {multiplier:.2f} to [{MULTIPLIER_MIN}, {MULTIPLIER_MAX}]")
    reason = "; ".join(why) if why else "standard size: no rule applied"
    return clamped, f"rules {clamped:.2f}: {reason}"
