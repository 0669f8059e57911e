"""The decided table's one value per signal (agents.glue.decided_record)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.glue.decided_record import DecidedCorrupt, pack, unpack

frames = st.binary(max_size=300).map(lambda b: b"\x00" + b)  # Confluent frames start with byte 0


@given(frames, frames)
def test_round_trip(decision, signal):
    assert unpack(pack(decision, signal)) == (decision, signal)


@given(frames)
def test_a_value_of_the_first_format_is_the_decision_alone(decision):
    assert unpack(decision) == (decision, None)


@pytest.mark.parametrize("raw", [b"", b"{json}", b"RDS1\x05", b"RDS1" + (50).to_bytes(4, "little") + b"\x00abc"])
def test_anything_else_is_refused_with_a_reason(raw):
    with pytest.raises(DecidedCorrupt):
        unpack(raw)
