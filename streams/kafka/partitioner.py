"""The partition of a keyed record as the Java client and librdkafka's ``murmur2_random`` choose it,
so that every client of the deployment puts one key in one partition.

The hash is librdkafka's own, which confluent-kafka exposes (``confluent_kafka.murmur2``): the
function the confluent runtime's producer partitions with, in C. aiokafka's ``murmur2`` works byte by
byte in Python (about 20 µs for a 64-byte key; a word-at-a-time Python one, about 4.6 µs), too slow
for the event loop's hot path (the audit chain picks each event's partition before it is produced).
tests/kafka/test_partitioner.py checks it against aiokafka's and the Java client's known values.
"""

from __future__ import annotations

from confluent_kafka import murmur2


def partition_of(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions`` (the Java client's
    ``toPositive(murmur2(key)) % partitions``). ``partitions`` is at least 1."""
    return int(murmur2(key, partitions))
