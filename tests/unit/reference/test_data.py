"""Bars from CSV files, DataFrames and the built-in real data sets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rlsizer.reference.data import (
    BarDataError,
    infer_interval,
    interval_seconds,
    load_csv,
    load_dataset,
    normalise_bars,
)

GOOD = "Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-02,10,11,9.5,10.5,10.4,100\n2024-01-03,10.5,11.2,10.1,11,10.9,120\n"


def write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yahoo_style_csv_is_normalised(tmp_path: Path) -> None:
    frame = load_csv(write(tmp_path, GOOD))
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert str(frame.index.tz) == "UTC" and frame.index.name == "ts"
    assert frame.index[1] == pd.Timestamp("2024-01-03", tz="UTC")
    assert frame["close"].tolist() == [10.5, 11.0]  # Close, not Adj Close


def test_semicolon_lowercase_and_dayfirst_dates(tmp_path: Path) -> None:
    text = "gmt time;open;high;low;close;volume\n01.02.2024 13:00:00.000;1.1;1.2;1.0;1.15;5\n01.02.2024 14:00:00.000;1.15;1.3;1.1;1.2;6\n"
    frame = load_csv(write(tmp_path, text))
    assert frame.index[0] == pd.Timestamp("2024-02-01 13:00", tz="UTC")  # day first, 1 February
    assert infer_interval(frame.index) == "1h"


def test_epoch_seconds_and_missing_volume_from_dataframe() -> None:
    raw = pd.DataFrame(
        {"Timestamp": [1_700_000_000, 1_700_000_060], "O": [1, 2], "H": [2, 3], "L": [1, 1.5], "C": [2, 2.5]}
    )
    frame = normalise_bars(raw)
    assert frame.index[1] - frame.index[0] == pd.Timedelta(minutes=1)
    assert frame["volume"].tolist() == [0.0, 0.0]


def test_unsorted_input_is_sorted() -> None:
    raw = pd.DataFrame(
        {"date": ["2024-01-03", "2024-01-02"], "open": [2, 1], "high": [2, 1], "low": [2, 1], "close": [2, 1]}
    )
    assert normalise_bars(raw)["close"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("2024-01-04,10,10.2,10.5,10.3,1", "row 3: high 10.2 < low 10.5"),
        ("2024-01-04,10,11,9,abc,1", "row 3: close 'abc' is not a number"),
        ("2024-01-04,10,11,9,12,1", "row 3: high 11.0 < close 12.0"),
        ("2024-01-04,0,11,9,10,1", "row 3: open 0.0 must be > 0"),
        ("2024-01-04,10,11,9,10,-5", "row 3: volume -5.0 must be >= 0"),
        ("next tuesday,10,11,9,10,1", "row 3: Date 'next tuesday' is not a date"),
        ("2024-01-03,10,11,9,10,1", "row 3: duplicate timestamp"),
    ],
)
def test_bad_rows_are_named(tmp_path: Path, line: str, message: str) -> None:
    text = "Date,Open,High,Low,Close,Volume\n2024-01-02,10,11,9,10,1\n2024-01-03,10,11,9,10,1\n" + line + "\n"
    with pytest.raises(BarDataError, match=message):
        load_csv(write(tmp_path, text))


def test_missing_column_is_named(tmp_path: Path) -> None:
    with pytest.raises(BarDataError, match="missing column 'close'"):
        load_csv(write(tmp_path, "Date,Open,High,Low,Volume\n2024-01-02,1,2,1,3\n"))
    with pytest.raises(BarDataError, match="no time column"):
        load_csv(write(tmp_path, "When,Open,High,Low,Close\nx,1,2,1,1\n"))
    with pytest.raises(BarDataError, match="no such file"):
        load_csv(tmp_path / "absent.csv")


def test_real_aapl_daily_is_split_adjusted() -> None:
    frame = load_dataset("aapl")
    assert frame.attrs == {"symbol": "AAPL", "interval": "1d"}
    assert len(frame) > 3000 and frame.index.is_monotonic_increasing
    # AAPL split 2:1 on 2000-06-21 and 2005-02-28; unadjusted data shows ~-50% overnight gaps there
    gaps = frame["open"] / frame["close"].shift(1)
    for day in ("2000-06-21", "2005-02-28"):
        assert 0.9 < gaps[pd.Timestamp(day, tz="UTC")] < 1.1
    assert infer_interval(frame.index) == "1d"


def test_real_eurusd_hourly() -> None:
    frame = load_dataset("EURUSD")
    assert frame.attrs["interval"] == "1h" and infer_interval(frame.index) == "1h"
    assert frame.index[0] == pd.Timestamp("2017-01-01 22:00", tz="UTC")
    assert 1.0 < frame["close"].median() < 1.3
    assert (frame["high"] >= frame["low"]).all()


def test_real_googl_daily_from_gym_anytrading() -> None:
    frame = load_dataset("GOOGL")
    assert frame.attrs == {"symbol": "GOOGL", "interval": "1d"} and infer_interval(frame.index) == "1d"
    assert frame.index[0] == pd.Timestamp("2009-05-22", tz="UTC") and len(frame) == 2335
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert (frame["high"] >= frame["low"]).all()


def test_unknown_dataset_lists_the_builtins() -> None:
    with pytest.raises(BarDataError, match="AAPL, FB, GOOG, IBM, MSFT, EURUSD, GOOGL"):
        load_dataset("BTC")


def test_interval_seconds() -> None:
    assert interval_seconds("1h") == 3600 and interval_seconds("15m") == 900 and interval_seconds("1d") == 86_400
    with pytest.raises(BarDataError):
        interval_seconds("hourly")
