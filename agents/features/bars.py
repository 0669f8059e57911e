"""Bar features of ``fs1``: TA-Lib array functions over the point-in-time window.

Every indicator is computed by TA-Lib over the bars of the window (at most
``WINDOW``), so the same window gives the same numbers live and in replay.
Values TA-Lib cannot compute yet (its lookback is longer than the window)
come back NaN and are replaced by the feature's neutral value downstream.
"""

from __future__ import annotations

import math

import numpy as np
import talib

from agents.features.window import Window

_NAN = float("nan")


def _last(values: np.ndarray) -> float:
    return float(values[-1]) if values.shape[0] else _NAN


def _ratio(num: float, den: float) -> float:
    """num / den, NaN when the denominator is zero or either side is not finite."""
    if not (math.isfinite(num) and math.isfinite(den)) or den == 0.0:
        return _NAN
    return num / den


def bar_features(win: Window) -> dict[str, float]:
    """Every bar-derived feature of ``fs1`` (NaN where not computable)."""
    n = len(win)
    out: dict[str, float] = {"bars_available": float(n)}
    if n == 0:
        return out
    o, h, l, c, v = win.open, win.high, win.low, win.close, win.volume
    close = float(c[-1])

    logc = np.log(c)
    for k in (1, 3, 5, 10, 20, 60):
        out[f"ret_{k}"] = float(logc[-1] - logc[-1 - k]) if n > k else _NAN

    emas = {p: talib.EMA(c, timeperiod=p) for p in (9, 21, 50, 100)}
    for p, ema in emas.items():
        out[f"ema_dist_{p}"] = _ratio(close, _last(ema)) - 1.0
    diff = emas[9] - emas[21]
    valid = diff[np.isfinite(diff)]
    if valid.shape[0]:
        sign = np.sign(valid)
        out["ema_cross_9_21"] = float(sign[-1])
        changed = np.flatnonzero(sign[1:] != sign[:-1])
        age = valid.shape[0] - 1 - (changed[-1] + 1) if changed.shape[0] else valid.shape[0] - 1
        out["ema_cross_age_9_21"] = float(min(age, 50))
        out["ema_spread_9_21"] = float(valid[-1]) / close
    ema21 = emas[21]
    out["ema_slope_21"] = _ratio(float(ema21[-1] - ema21[-6]), close) if n >= 6 else _NAN

    out["rsi_14"] = _last(talib.RSI(c, timeperiod=14)) / 100.0
    out["rsi_7"] = _last(talib.RSI(c, timeperiod=7)) / 100.0
    line, signal, hist = talib.MACD(c, fastperiod=12, slowperiod=26, signalperiod=9)
    out["macd_line"] = _last(line) / close
    out["macd_signal"] = _last(signal) / close
    out["macd_hist"] = _last(hist) / close
    slowk, slowd = talib.STOCH(
        h,
        l,
        c,
        fastk_period=14,
        slowk_period=3,
        slowk_matype=talib.MA_Type.SMA,
        slowd_period=3,
        slowd_matype=talib.MA_Type.SMA,
    )
    out["stoch_k"] = _last(slowk) / 100.0
    out["stoch_d"] = _last(slowd) / 100.0
    out["cci_20"] = _last(talib.CCI(h, l, c, timeperiod=20)) / 100.0
    out["mfi_14"] = _last(talib.MFI(h, l, c, v, timeperiod=14)) / 100.0
    sma20 = _last(talib.SMA(c, timeperiod=20))
    out["zscore_close_20"] = _ratio(close - sma20, _last(talib.STDDEV(c, timeperiod=20, nbdev=1)))
    out["linreg_slope_20"] = _last(talib.LINEARREG_SLOPE(c, timeperiod=20)) / close

    upper, middle, lower = talib.BBANDS(c, timeperiod=20, nbdevup=2, nbdevdn=2, matype=talib.MA_Type.SMA)
    out["bb_pctb_20"] = _ratio(close - _last(lower), _last(upper) - _last(lower))
    out["bb_width_20"] = _ratio(_last(upper) - _last(lower), _last(middle))
    for p in (20, 55):
        hi, lo = _last(talib.MAX(h, timeperiod=p)), _last(talib.MIN(l, timeperiod=p))
        out[f"donchian_pos_{p}"] = _ratio(close - lo, hi - lo)
        if p == 20:
            out["donchian_width_20"] = (hi - lo) / close

    atr14 = _last(talib.ATR(h, l, c, timeperiod=14))
    out["atr_pct_14"] = atr14 / close
    out["atr_ratio_5_20"] = _ratio(_last(talib.ATR(h, l, c, timeperiod=5)), _last(talib.ATR(h, l, c, timeperiod=20)))
    rets = np.diff(logc)
    for w in (5, 20, 60):
        out[f"rv_{w}"] = _last(talib.STDDEV(rets, timeperiod=w, nbdev=1)) if rets.shape[0] >= w else _NAN
    out["rv_ratio_5_60"] = _ratio(out["rv_5"], out["rv_60"])
    out["adx_14"] = _last(talib.ADX(h, l, c, timeperiod=14)) / 100.0
    out["plus_di_14"] = _last(talib.PLUS_DI(h, l, c, timeperiod=14)) / 100.0
    out["minus_di_14"] = _last(talib.MINUS_DI(h, l, c, timeperiod=14)) / 100.0

    for w in (20, 60):
        out[f"vol_z_{w}"] = _ratio(
            float(v[-1]) - _last(talib.SMA(v, timeperiod=w)), _last(talib.STDDEV(v, timeperiod=w, nbdev=1))
        )
    out["vol_ratio_5_20"] = _ratio(_last(talib.SMA(v, timeperiod=5)), _last(talib.SMA(v, timeperiod=20)))

    bo, bh, bl = float(o[-1]), float(h[-1]), float(l[-1])
    rng = bh - bl
    out["bar_range_pct"] = rng / close
    out["bar_body_pct"] = (close - bo) / close
    out["bar_upper_wick"] = _ratio(bh - max(bo, close), rng)
    out["bar_lower_wick"] = _ratio(min(bo, close) - bl, rng)
    out["bar_close_pos"] = _ratio(close - bl, rng)
    out["bar_gap_pct"] = bo / float(c[-2]) - 1.0 if n >= 2 else _NAN

    # helpers for the signal features; not part of fs1
    out["close"] = close
    out["atr_14"] = atr14
    bid, ask = float(win.bid[-1]), float(win.ask[-1])
    if math.isfinite(bid) and math.isfinite(ask):
        out["has_quotes"] = 1.0
        out["spread_bps"] = _ratio(ask - bid, (ask + bid) / 2.0) * 1e4
        bs, asz = float(win.bid_size[-1]), float(win.ask_size[-1])
        out["book_imbalance"] = _ratio(bs - asz, bs + asz)
    return out
