"""OHLCV bars from any CSV or DataFrame, and the built-in real data sets.

``normalise_bars`` turns a frame with the usual column names (``Date``,
``Datetime``, ``Timestamp``, ``Time``, ``Gmt time``; ``Open/High/Low/Close/Volume``
in any case; ``Adj Close`` and unknown columns are ignored) into the one shape the
reference adapter uses: a UTC ``DatetimeIndex`` named ``ts`` (the bar's *start*),
sorted, unique, and float columns ``open high low close volume``. A missing
``volume`` column becomes 0 (many FX exports have none). Naive timestamps are
taken as UTC.

Anything it cannot use raises ``BarDataError`` naming the column or the first bad
row; rows are numbered from 1 in data order (for a CSV with a header, row N is
line N + 1 of the file), e.g. ``row 17: high 10.2 < low 10.5``.

Built-in data sets come from installed packages, never from the network:
bokeh-sampledata daily stocks (AAPL, FB, GOOG, IBM, MSFT, 2000-2013; split- and
dividend-adjusted here with the source's ``adj_close`` so a 2:1 split is not a
-50% crash) and gym-anytrading's EUR/USD hourly ask bars (2017).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
import pandas as pd

PRICE_COLUMNS: Final = ("open", "high", "low", "close")
COLUMNS: Final = (*PRICE_COLUMNS, "volume")
TIME_ALIASES: Final = ("ts", "timestamp", "datetime", "date", "time", "gmttime", "localtime", "opentime", "date_time")
_DAYFIRST_FORMATS: Final = (
    "%d.%m.%Y %H:%M:%S.%f",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
)
_SLASH_FORMATS: Final = (
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%Y%m%d %H:%M:%S",
    "%Y%m%d",
)


class BarDataError(ValueError):
    """Bars that cannot be used; the message names the column or the row."""


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    name: str
    symbol: str
    interval: str
    source: str


DATASETS: Final[dict[str, DatasetInfo]] = {
    **{
        t: DatasetInfo(t, t, "1d", "bokeh-sampledata stocks (Quandl WIKI, public domain)")
        for t in ("AAPL", "FB", "GOOG", "IBM", "MSFT")
    },
    "EURUSD": DatasetInfo("EURUSD", "EURUSD", "1h", "gym-anytrading FOREX_EURUSD_1H_ASK"),
    "GOOGL": DatasetInfo("GOOGL", "GOOGL", "1d", "gym-anytrading STOCKS_GOOGL"),
}


def _key(name: object) -> str:
    return str(name).strip().lower().replace(" ", "").replace("_", "").replace("-", "")


def _find_columns(frame: pd.DataFrame) -> tuple[object | None, dict[str, object]]:
    by_key: dict[str, object] = {}
    for col in frame.columns:
        by_key.setdefault(_key(col), col)
    found: dict[str, object] = {name: by_key[name] for name in COLUMNS if name in by_key}
    for short, name in (("o", "open"), ("h", "high"), ("l", "low"), ("c", "close"), ("v", "volume"), ("vol", "volume")):
        if name not in found and short in by_key:
            found[name] = by_key[short]
    time_col = next((by_key[_key(a)] for a in TIME_ALIASES if _key(a) in by_key), None)
    return time_col, found


def _parse_times(raw: pd.Series | pd.Index, label: str) -> pd.DatetimeIndex:
    values = pd.Series(raw, copy=False).reset_index(drop=True)
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values)
        return pd.DatetimeIndex(parsed.dt.tz_localize("UTC") if parsed.dt.tz is None else parsed.dt.tz_convert("UTC"))
    if pd.api.types.is_numeric_dtype(values):
        biggest = float(np.nanmax(np.abs(values.to_numpy(dtype=float)))) if len(values) else 0.0
        unit: Literal["ns", "us", "ms", "s"] = (
            "ns" if biggest > 1e17 else "us" if biggest > 1e14 else "ms" if biggest > 1e11 else "s"
        )
        return pd.DatetimeIndex(pd.to_datetime(values, unit=unit, utc=True))
    text = values.astype(str).str.strip()
    best: pd.Series | None = None
    for time_format in ("ISO8601", *_DAYFIRST_FORMATS, *_SLASH_FORMATS):
        try:
            parsed = pd.to_datetime(text, utc=True, errors="coerce", format=time_format)
        except (ValueError, TypeError):
            continue
        if not parsed.isna().any():
            return pd.DatetimeIndex(parsed)
        if best is None or parsed.notna().sum() > best.notna().sum():
            best = parsed
    bad = int(np.flatnonzero(best.isna().to_numpy())[0]) if best is not None else 0
    raise BarDataError(f"row {bad + 1}: {label} {text.iloc[bad]!r} is not a date/time in any known format")


def _row_problem(i: int, o: float, h: float, low: float, c: float, v: float) -> str | None:
    for name, value in (("open", o), ("high", h), ("low", low), ("close", c)):
        if not value > 0:
            return f"row {i + 1}: {name} {value} must be > 0"
    if h < low:
        return f"row {i + 1}: high {h} < low {low}"
    if h < max(o, c):
        return f"row {i + 1}: high {h} < {'open' if o > c else 'close'} {max(o, c)}"
    if low > min(o, c):
        return f"row {i + 1}: low {low} > {'open' if o < c else 'close'} {min(o, c)}"
    if not v >= 0:
        return f"row {i + 1}: volume {v} must be >= 0"
    return None


def normalise_bars(frame: pd.DataFrame, *, source: str = "bars") -> pd.DataFrame:
    """A validated copy of ``frame`` as UTC-indexed ``open high low close volume`` floats."""
    if len(frame) == 0:
        raise BarDataError(f"{source}: no rows")
    time_col, found = _find_columns(frame)
    missing = [name for name in PRICE_COLUMNS if name not in found]
    if missing:
        raise BarDataError(
            f"{source}: missing column {missing[0]!r} (columns are {', '.join(map(str, frame.columns))})"
        )
    if time_col is not None:
        times = _parse_times(frame[time_col], f"{time_col}")
    elif isinstance(frame.index, pd.DatetimeIndex) or _key(frame.index.name or "") in {_key(a) for a in TIME_ALIASES}:
        times = _parse_times(frame.index.to_series(), str(frame.index.name or "index"))
    else:
        raise BarDataError(
            f"{source}: no time column (expected one of Date, Datetime, Timestamp, Time) and no datetime index"
        )
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for name in COLUMNS:
        if name not in found:
            out[name] = 0.0
            continue
        raw = frame[found[name]].reset_index(drop=True)
        numbers = pd.to_numeric(raw, errors="coerce")
        bad = np.flatnonzero(numbers.isna().to_numpy())
        if len(bad):
            i = int(bad[0])
            raise BarDataError(f"row {i + 1}: {name} {raw.iloc[i]!r} is not a number")
        out[name] = numbers.astype(float)
    arr = out.to_numpy()
    for i in range(len(arr)):
        problem = _row_problem(i, *arr[i])
        if problem:
            raise BarDataError(problem)
    out.index = times.rename("ts")
    dup = np.flatnonzero(out.index.duplicated())
    if len(dup):
        raise BarDataError(f"row {int(dup[0]) + 1}: duplicate timestamp {out.index[dup[0]]}")
    return out.sort_index(kind="stable")


def _sniff_delimiter(path: Path) -> str:
    with path.open(newline="") as fh:
        head = fh.read(4096)
    try:
        return csv.Sniffer().sniff(head, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def load_csv(path: str | Path) -> pd.DataFrame:
    """Read and normalise a CSV of bars (delimiter , ; tab or | detected)."""
    p = Path(path)
    if not p.is_file():
        raise BarDataError(f"{p}: no such file")
    try:
        frame = pd.read_csv(p, sep=_sniff_delimiter(p), skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BarDataError(f"{p}: not a readable CSV: {exc}") from exc
    try:
        return normalise_bars(frame, source=str(p))
    except BarDataError as exc:
        raise BarDataError(f"{p}: {exc}" if not str(exc).startswith(str(p)) else str(exc)) from None


def _bokeh_stock(ticker: str) -> pd.DataFrame:
    import bokeh_sampledata.stocks as stocks  # lazy: loads bokeh-sampledata only when used

    raw = pd.DataFrame(getattr(stocks, ticker))
    factor = raw["adj_close"] / raw["close"]
    frame = raw[["date", *PRICE_COLUMNS]].copy()
    for name in PRICE_COLUMNS:
        frame[name] = raw[name] * factor
    frame["volume"] = raw["volume"] / factor
    return frame


def _eurusd() -> pd.DataFrame:
    from gym_anytrading.datasets import FOREX_EURUSD_1H_ASK  # lazy: loads gym-anytrading only when used

    frame: pd.DataFrame = FOREX_EURUSD_1H_ASK
    return frame


def _googl() -> pd.DataFrame:
    from gym_anytrading.datasets import STOCKS_GOOGL  # lazy: loads gym-anytrading only when used

    frame: pd.DataFrame = STOCKS_GOOGL.drop(columns=["Adj Close"])
    return frame


def load_dataset(name: str) -> pd.DataFrame:
    """A built-in data set by name (``AAPL``, ``FB``, ``GOOG``, ``IBM``, ``MSFT``, ``EURUSD``, ``GOOGL``), normalised.

    ``frame.attrs`` carries ``symbol`` and ``interval``.
    """
    info = DATASETS.get(name.upper())
    if info is None:
        raise BarDataError(f"unknown data set {name!r}; built-in: {', '.join(DATASETS)}")
    raw = {"EURUSD": _eurusd, "GOOGL": _googl}.get(info.name, lambda: _bokeh_stock(info.name))()
    frame = normalise_bars(raw, source=info.source)
    frame.attrs.update(symbol=info.symbol, interval=info.interval)
    return frame


_UNITS: Final = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def infer_interval(index: pd.Index) -> str:
    """The bar interval as ``1d``/``4h``/``5m``/``30s`` from the median spacing (weekends do not move a median)."""
    if len(index) < 2:
        raise BarDataError("cannot infer the bar interval from fewer than 2 bars; pass --interval")
    seconds = round(pd.Timedelta(pd.Series(index).diff().median()).total_seconds())
    if seconds <= 0:
        raise BarDataError("cannot infer the bar interval: timestamps do not advance")
    for unit, size in _UNITS:
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def interval_seconds(interval: str) -> int:
    """``1h`` -> 3600; accepts s, m, h, d, w."""
    sizes = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
    text = interval.strip().lower()
    try:
        count, unit = int(text[:-1] or "1"), text[-1]
        return count * sizes[unit]
    except (ValueError, KeyError, IndexError):
        raise BarDataError(f"interval {interval!r} is not like 1d, 4h, 15m, 30s") from None
