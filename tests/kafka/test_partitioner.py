"""Our partitioner (librdkafka's murmur2, through confluent-kafka) against aiokafka's, which follows
the Java client byte by byte, and against the Java client's own test values."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from streams.kafka.partitioner import partition_of


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=64))
def test_the_partition_is_the_one_other_clients_choose(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    assert partition_of(key, partitions) == DefaultPartitioner()(key, every, every)


@given(st.binary(max_size=200))
def test_the_hash_is_the_java_clients(key: bytes) -> None:
    # Modulo the largest partition count, the partition is the positive hash itself (but for one value).
    most = 0x7FFFFFFF
    assert partition_of(key, most) == (aiokafka_murmur2(key) & 0x7FFFFFFF) % most


# Utils.murmur2 in the Java client's UtilsTest (signed 32-bit there)
JAVA_CLIENT_CASES = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_known_values_of_the_java_client() -> None:
    for key, signed in JAVA_CLIENT_CASES.items():
        for partitions in (1, 2, 3, 4, 7, 12, 100, 0x7FFFFFFF):
            assert partition_of(key, partitions) == (signed & 0x7FFFFFFF) % partitions, key
