"""Exact running sums of floats that round like ``math.fsum``.

A finite float is a dyadic rational, so every finite float is an integer
multiple of 2**-1074 (the smallest subnormal). Kept as that integer, sums and
differences are exact (Python ints do not overflow), and ``to_float`` rounds
the exact value to the nearest float (half to even), as ``math.fsum`` does.
So a sum can be updated as values come and go, in O(1) per value, and still
read bit for bit as ``math.fsum`` of the values it holds.

Non-finite values have no such integer, and near the top of the float range
``math.fsum`` raises "intermediate overflow" where an exact sum would round:
``scaled`` gives ``None`` for both (``abs(x) >= 2**1000``, NaN, inf) and the
callers fall back to ``math.fsum``. Below that bound, sums of fewer than 2**23
values never leave the float range, and ``to_float`` equals ``math.fsum``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

_SHIFT: Final = 1074  # 2**-1074 is the smallest positive float
_ONE: Final = 1 << _SHIFT
LIMIT: Final = 2.0**1000
"""Values at or beyond this magnitude (and NaN) have no exact form here: sum them with ``math.fsum``."""


def scaled(x: float) -> int | None:
    """``x`` as an exact multiple of 2**-1074; ``None`` when ``abs(x) >= LIMIT`` or ``x`` is NaN."""
    if not abs(x) < LIMIT:
        return None
    num, den = x.as_integer_ratio()  # den is a power of two <= 2**1074
    return num << (_SHIFT - den.bit_length() + 1)


def scaled_sum(values: Iterable[float]) -> int | None:
    """The exact sum of ``values`` scaled as ``scaled``; ``None`` when one has no exact form."""
    total = 0
    for x in values:
        s = scaled(x)
        if s is None:
            return None
        total += s
    return total


def to_float(total: int) -> float:
    """The float nearest to ``total * 2**-1074`` (ties to even), as ``math.fsum`` rounds.

    Zero is ``0.0``: a sum holding only negative zeros would be ``-0.0`` in
    ``math.fsum``; callers that can hold them check for zero first.
    """
    return total / _ONE  # int / int is correctly rounded in CPython
