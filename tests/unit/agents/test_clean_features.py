"""clean_features is the scalar rule, element-wise, bit for bit (agents.features.compute)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from agents.features.catalog import FEATURE_LIMIT, FEATURE_NAMES, FEATURE_NEUTRAL
from agents.features.compute import clean_features


def scalar_rule(value: float, neutral: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        return neutral
    return min(max(value, -FEATURE_LIMIT), FEATURE_LIMIT)


values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, FEATURE_LIMIT, -FEATURE_LIMIT, 2e9, -2e9, 1e308, 5e-324]),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.booleans(),
)


@given(st.dictionaries(st.sampled_from(FEATURE_NAMES), values))
def test_same_as_the_scalar_rule(raw):
    got = clean_features(raw)
    assert list(got) == list(FEATURE_NAMES)
    for name in FEATURE_NAMES:
        want = scalar_rule(raw.get(name, math.nan), FEATURE_NEUTRAL[name])
        assert type(got[name]) is float
        assert math.copysign(1.0, got[name]) == math.copysign(1.0, want) and got[name] == want, name
