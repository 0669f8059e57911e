"""FeaturesComputed accepts a feature map exactly when every value is a finite number (fast check or not)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import FeaturesComputed, InvalidEvent

T = datetime(2024, 1, 2, tzinfo=UTC)
values = st.one_of(
    st.floats(),  # NaN, infinities, huge values whose total overflows
    st.integers(-(10**400), 10**400),  # ints a double cannot hold
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False).map(np.float64),
)


def _valid(v: object) -> bool:
    try:
        return math.isfinite(v)  # type: ignore[arg-type]
    except OverflowError:  # an int beyond the double range: no double holds it
        return False


def _features(features: dict) -> FeaturesComputed:
    return FeaturesComputed(
        ts_event=T,
        signal_id="s",
        symbol="A",
        strategy_id="S1",
        strategy_type="EmaCross",
        feature_set="fs1",
        features=features,
    )


@given(st.dictionaries(st.text(min_size=1, max_size=5), values, max_size=30))
def test_accepted_exactly_when_every_value_is_finite(features):
    if all(_valid(v) for v in features.values()):
        assert dict(_features(features).features) == features
    else:
        with pytest.raises(InvalidEvent, match="feature"):
            _features(features)


def test_a_total_that_overflows_is_still_accepted():
    assert _features({"a": 1e308, "b": 1e308}).features["b"] == 1e308
