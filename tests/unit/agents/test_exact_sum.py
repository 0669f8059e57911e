"""agents.exact_sum: running sums that read bit for bit as math.fsum."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.exact_sum import LIMIT, scaled, scaled_sum, to_float

finite = st.floats(allow_nan=False, allow_infinity=False)  # subnormals, -0.0 and values past LIMIT included


@settings(max_examples=2000, deadline=None)
@given(st.lists(finite, min_size=1, max_size=12))
def test_a_nonzero_sum_reads_as_fsum(values):
    total = scaled_sum(values)
    if total is None:
        assert any(abs(v) >= LIMIT for v in values)
    elif total:  # zero: fsum keeps the sign of a sum of negative zeros, an integer cannot
        assert to_float(total) == math.fsum(values)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.floats(-LIMIT, LIMIT, exclude_min=True, exclude_max=True), min_size=2, max_size=12), st.data())
def test_removing_values_from_a_running_sum_is_exact(values, data):
    gone = data.draw(st.integers(0, len(values) - 1))
    total = scaled_sum(values) - scaled(values[gone])
    rest = values[:gone] + values[gone + 1 :]
    assert total == scaled_sum(rest)
    if total:
        assert to_float(total) == math.fsum(rest)


@pytest.mark.parametrize("x", [math.nan, math.inf, -math.inf, LIMIT, -1.7976931348623157e308])
def test_values_fsum_may_overflow_on_have_no_exact_form(x):
    assert scaled(x) is None
    assert scaled_sum([1.0, x]) is None


def test_smallest_subnormal_is_one():
    assert scaled(5e-324) == 1 and scaled(-5e-324) == -1 and to_float(3) == 1.5e-323
