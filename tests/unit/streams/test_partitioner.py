"""streams.partitioner places keys as Kafka's Java client (and aiokafka, a Java-compatible port) does."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from streams.partitioner import murmur2, partition_for


@given(st.binary(max_size=40), st.integers(min_value=1, max_value=64))
def test_same_partition_as_aiokafka(key: bytes, n: int):
    parts = list(range(n))
    assert partition_for(key, n) == DefaultPartitioner()(key, parts, parts)


def test_known_java_values():
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed ints there; unsigned here)
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for key, signed in cases.items():
        assert murmur2(key) == signed & 0xFFFFFFFF, key
