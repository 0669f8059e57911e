"""The decided table's one value per signal (agents.glue.decided_record)."""

from __future__ import annotations

from datetime import UTC

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.glue.decided_record import MAGIC_V1, Decided, DecidedCorrupt, pack, unpack, with_closed

frames = st.binary(max_size=300).map(lambda b: b"\x00" + b)  # Confluent frames start with byte 0


@given(frames, frames, st.integers(0, 2**31 - 1), st.integers(0, 2**62), st.text(max_size=40), frames)
def test_round_trip(decision, signal, partition, offset, exit_id, closed):
    entry = unpack(pack(decision, signal, partition=partition, offset=offset))
    assert entry == Decided(decision, signal, partition, offset, None, None)
    assert entry.at(partition, offset) and not entry.at(partition, offset + 1)
    done = unpack(with_closed(entry, exit_id or "x", closed))
    assert done == Decided(decision, signal, partition, offset, exit_id or "x", closed)


@given(frames, frames)
def test_values_of_the_earlier_formats_still_read_without_a_position(decision, signal):
    v1 = MAGIC_V1 + len(decision).to_bytes(4, "little") + decision + signal
    assert unpack(v1) == Decided(decision, signal, None, None)
    assert unpack(decision) == Decided(decision, None, None, None)
    assert not unpack(decision).at(0, 0)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{json}",
        b"RDS1\x05",
        b"RDS1" + (50).to_bytes(4, "little") + b"\x00abc",
        b"RDS2\x00\x00",
        b"RDS2" + bytes(12) + (99).to_bytes(4, "little") + b"\x00",
    ],
)
def test_anything_else_is_refused_with_a_reason(raw):
    with pytest.raises(DecidedCorrupt):
        unpack(raw)


def test_retention_entries_read_symbol_and_time_of_each_decision_and_skip_what_they_cannot():
    from datetime import datetime

    from agents.glue.decided_record import pack, retention_entries
    from agents.timestamps import to_micros
    from schemas.codec import EventCodec, InMemoryRegistry
    from schemas.events import SizeDecided

    codec = EventCodec(InMemoryRegistry())
    ts = datetime(2021, 5, 3, 14, 30, tzinfo=UTC)
    decision = codec.encode(
        "d",
        SizeDecided(
            ts_event=ts,
            signal_id="s1",
            symbol="IBM",
            strategy_id="S2",
            multiplier=1.0,
            qty=1.0,
            policy="RULES",
            reason="t",
            latency_us=1,
        ),
    )
    items = [
        (b"s1", pack(decision, b"signal", partition=2, offset=7)),
        (b"old-format", decision),
        (b"bad", b"RDS1\x00"),
        (b"nopart", pack(decision, b"", partition=0, offset=0)),
    ]
    partitions = {b"s1": 2, b"old-format": 5, b"bad": 1}
    skipped: list[bytes] = []
    got = list(retention_entries(items, partitions.get, codec, skipped=skipped))
    assert got == [("IBM", to_micros(ts), b"s1", 2), ("IBM", to_micros(ts), b"old-format", 5)]
    assert skipped == [b"bad", b"nopart"]
