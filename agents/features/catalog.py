"""The feature set ``fs1``: every feature's name, neutral value and one-line doc.

The order of ``FEATURE_NAMES`` is the column order of feature vectors. The
neutral value is what a feature reads when it cannot be computed yet (warm-up,
no quotes, no trade history): features are always finite floats, and
``bars_available`` tells a model how much history stood behind them.

Conventions: prices are read at the close of the last bar whose ``ts_event``
(the bar's close time) is at or before the signal's ``ts_event``; ratios to
price are plain fractions (0.01 = 1 %); oscillators bounded 0..100 are divided
by 100.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from agents.strategy_map import FAMILIES

FEATURE_SET: Final = "fs1"

_SPECS: Final[tuple[tuple[str, float, str], ...]] = (
    # history behind the features
    (
        "bars_available",
        0.0,
        "number of bars (at or before the signal, at most 200) the bar features were computed from",
    ),
    ("has_quotes", 0.0, "1 when the last bar carried a best bid and ask, else 0"),
    # returns
    ("ret_1", 0.0, "log return of the close over the last bar"),
    ("ret_3", 0.0, "log return of the close over the last 3 bars"),
    ("ret_5", 0.0, "log return of the close over the last 5 bars"),
    ("ret_10", 0.0, "log return of the close over the last 10 bars"),
    ("ret_20", 0.0, "log return of the close over the last 20 bars"),
    ("ret_60", 0.0, "log return of the close over the last 60 bars"),
    # moving averages
    ("ema_dist_9", 0.0, "close / EMA(9) - 1"),
    ("ema_dist_21", 0.0, "close / EMA(21) - 1"),
    ("ema_dist_50", 0.0, "close / EMA(50) - 1"),
    ("ema_dist_100", 0.0, "close / EMA(100) - 1"),
    ("ema_cross_9_21", 0.0, "+1 when EMA(9) is above EMA(21), -1 when below, 0 in warm-up"),
    ("ema_spread_9_21", 0.0, "(EMA(9) - EMA(21)) / close"),
    ("ema_cross_age_9_21", 0.0, "bars since EMA(9) last crossed EMA(21), capped at 50"),
    ("ema_slope_21", 0.0, "change of EMA(21) over the last 5 bars / close"),
    # oscillators
    ("rsi_14", 0.5, "RSI(14) / 100"),
    ("rsi_7", 0.5, "RSI(7) / 100"),
    ("macd_line", 0.0, "MACD(12, 26) line / close"),
    ("macd_signal", 0.0, "MACD signal line (EMA 9 of the line) / close"),
    ("macd_hist", 0.0, "MACD histogram (line - signal) / close"),
    ("stoch_k", 0.5, "slow stochastic %K(14, 3) / 100"),
    ("stoch_d", 0.5, "slow stochastic %D(3) / 100"),
    ("cci_20", 0.0, "commodity channel index(20) / 100"),
    ("mfi_14", 0.5, "money flow index(14) / 100"),
    ("zscore_close_20", 0.0, "(close - SMA(20)) / population stddev(20) of the close"),
    ("linreg_slope_20", 0.0, "slope per bar of the 20-bar linear regression of the close / close"),
    # bands and channels
    ("bb_pctb_20", 0.5, "Bollinger %b: (close - lower) / (upper - lower), bands SMA(20) +/- 2 stddev"),
    ("bb_width_20", 0.0, "Bollinger width: (upper - lower) / middle"),
    ("donchian_pos_20", 0.5, "(close - 20-bar low) / (20-bar high - 20-bar low)"),
    ("donchian_pos_55", 0.5, "(close - 55-bar low) / (55-bar high - 55-bar low)"),
    ("donchian_width_20", 0.0, "(20-bar high - 20-bar low) / close"),
    # volatility and trend strength
    ("atr_pct_14", 0.0, "ATR(14) / close"),
    ("atr_ratio_5_20", 1.0, "ATR(5) / ATR(20): expanding (>1) or contracting (<1) range"),
    ("rv_5", 0.0, "realized volatility: population stddev of 1-bar log returns over 5 bars"),
    ("rv_20", 0.0, "realized volatility over 20 bars"),
    ("rv_60", 0.0, "realized volatility over 60 bars"),
    ("rv_ratio_5_60", 1.0, "rv_5 / rv_60"),
    ("adx_14", 0.0, "ADX(14) / 100: trend strength"),
    ("plus_di_14", 0.0, "+DI(14) / 100"),
    ("minus_di_14", 0.0, "-DI(14) / 100"),
    # volume
    ("vol_z_20", 0.0, "(volume - SMA(20) of volume) / stddev(20) of volume"),
    ("vol_z_60", 0.0, "(volume - SMA(60) of volume) / stddev(60) of volume"),
    ("vol_ratio_5_20", 1.0, "SMA(5) of volume / SMA(20) of volume"),
    # the last bar
    ("bar_range_pct", 0.0, "(high - low) / close of the last bar"),
    ("bar_body_pct", 0.0, "(close - open) / close of the last bar"),
    ("bar_upper_wick", 0.0, "(high - max(open, close)) / (high - low) of the last bar"),
    ("bar_lower_wick", 0.0, "(min(open, close) - low) / (high - low) of the last bar"),
    ("bar_close_pos", 0.5, "(close - low) / (high - low) of the last bar"),
    ("bar_gap_pct", 0.0, "open of the last bar / previous close - 1"),
    # microstructure (0 unless the last bar carried quotes)
    ("spread_bps", 0.0, "(ask - bid) / mid in basis points, from the last bar's quote"),
    ("book_imbalance", 0.0, "(bid_size - ask_size) / (bid_size + ask_size) from the last bar's quote"),
    # time of the signal (UTC)
    ("tod_sin", 0.0, "sin(2 pi * seconds since UTC midnight / 86400) at the signal"),
    ("tod_cos", 1.0, "cos(2 pi * seconds since UTC midnight / 86400) at the signal"),
    ("dow_sin", 0.0, "sin(2 pi * weekday / 7) at the signal, Monday = 0"),
    ("dow_cos", 1.0, "cos(2 pi * weekday / 7) at the signal, Monday = 0"),
    # the signal itself
    ("sig_q_score", 0.5, "the signal's quality score as sent by the bot"),
    ("sig_score", 0.0, "the signal's raw strategy score as sent by the bot"),
    ("sig_atr_pct", 0.0, "the signal's ATR / the signal's price"),
    ("sig_side", 0.0, "+1 for BUY, -1 for SELL"),
    ("sig_stop_dist_atr", 0.0, "|price - stop| / ATR of the signal, 0 without a stop"),
    ("sig_target_dist_atr", 0.0, "|target - price| / ATR of the signal, 0 without a target"),
    ("sig_reward_risk", 0.0, "|target - price| / |price - stop|, 0 without both"),
    ("sig_price_gap", 0.0, "signal price / last close - 1"),
    ("sig_atr_vs_bars", 1.0, "the signal's ATR / ATR(14) of the bars"),
    # strategy family one-hot, in FAMILIES order
    *((f"fam_{family}", 0.0, f"1 when the strategy belongs to the {family} family") for family in FAMILIES),
    # the strategy's recent closed trades
    ("strat_win_rate", 0.5, "share of winning trades (R > 0) among the strategy's last closed trades"),
    ("strat_mean_r", 0.0, "mean R multiple of the strategy's last closed trades"),
    ("strat_std_r", 0.0, "population stddev of the R multiple of the strategy's last closed trades"),
    ("strat_last_r", 0.0, "R multiple of the strategy's most recent closed trade"),
    ("strat_streak", 0.0, "+k after k wins in a row, -k after k losses in a row"),
    ("strat_n_trades", 0.0, "number of the strategy's closed trades the history features use"),
    # the account
    ("acct_session_pnl_r", 0.0, "sum of R x multiplier of trades closed this UTC day so far"),
    ("acct_drawdown_r", 0.0, "drop of the session's cumulative R x multiplier from its peak (>= 0)"),
    ("acct_open_risk_r", 0.0, "sum of the multipliers of decided trades not closed yet"),
    ("acct_session_trades", 0.0, "number of trades closed this UTC day so far"),
    ("acct_open_trades", 0.0, "number of decided trades not closed yet"),
)

FEATURE_NAMES: Final[tuple[str, ...]] = tuple(name for name, _, _ in _SPECS)
FEATURE_DOCS: Final = MappingProxyType({name: doc for name, _, doc in _SPECS})
FEATURE_NEUTRAL: Final = MappingProxyType({name: neutral for name, neutral, _ in _SPECS})
FEATURE_LIMIT: Final = 1e9
"""Features are clipped to +/- this, so they stay finite as float32 too."""

assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES), "duplicate feature name"
