"""The write-behind buffer of the worker's account table (agents.glue.write_behind)."""

from __future__ import annotations

import pytest

from agents.glue.write_behind import WriteBehind


def _buffer(table: dict[str, int], writes: list[tuple[str, int, str]]) -> WriteBehind[str, int]:
    def write(key: str, value: int, origin: str) -> None:
        writes.append((key, value, origin))
        table[key] = value

    return WriteBehind(lambda key: table.get(key, 0), write)


def test_reads_see_pending_values_before_the_table_does():
    table, writes = {"AAPL": 1}, []
    buf = _buffer(table, writes)
    assert buf.get("AAPL") == 1
    buf.put("AAPL", 2, "p0@5")
    buf.put("AAPL", 3, "p0@6")
    assert buf.get("AAPL") == 3 and table["AAPL"] == 1 and len(buf) == 1


def test_flush_writes_each_key_once_with_its_last_value_and_origin():
    table, writes = {}, []
    buf = _buffer(table, writes)
    for i, key in enumerate(["AAPL", "MSFT", "AAPL", "AAPL", "MSFT"]):
        buf.put(key, i, f"p{i}")
    assert buf.flush() == 2
    assert writes == [("AAPL", 3, "p3"), ("MSFT", 4, "p4")]
    assert table == {"AAPL": 3, "MSFT": 4} and len(buf) == 0
    assert buf.flush() == 0 and len(writes) == 2


def test_a_failed_write_keeps_that_value_and_the_rest_pending():
    table: dict[str, int] = {}
    calls: list[str] = []

    def write(key: str, value: int, origin: object) -> None:
        calls.append(key)
        if key == "MSFT" and calls.count("MSFT") == 1:
            raise ConnectionError("producer gone")
        table[key] = value

    buf: WriteBehind[str, int] = WriteBehind(lambda key: table.get(key, 0), write)
    for key, value in (("AAPL", 1), ("MSFT", 2), ("IBM", 3)):
        buf.put(key, value, None)
    with pytest.raises(ConnectionError):
        buf.flush()
    assert table == {"AAPL": 1} and len(buf) == 2 and buf.get("IBM") == 3
    assert buf.flush() == 2
    assert table == {"AAPL": 1, "MSFT": 2, "IBM": 3}
