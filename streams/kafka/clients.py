"""Every Kafka client the project builds, from the librdkafka settings of ``Settings.kafka_common()``
(credentials included): one place for producer, consumer and admin configurations."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from streams.errors import ClusterError
from streams.settings import TRANSACTION_TIMEOUT_MS

# Keys go to the partition Java clients and aiokafka (faust) choose: murmur2. librdkafka's default
# (CRC32) would put a tombstone in another partition than the delivery it must erase.
SAME_PARTITIONS_AS_JAVA = {"partitioner": "murmur2_random"}
MAX_MESSAGE_BYTES = 8_388_608
# A transaction begun while the coordinator still writes the previous one's markers is refused
# with CONCURRENT_TRANSACTIONS and retried after this backoff (KAFKA-5477). A pipelined worker
# begins each transaction right after the previous commit and meets this often: the clients'
# 100 ms default would make its latency tail (docs/benchmarks.md, Findings).
# librdkafka backs other retries off from here exponentially (up to ``retry.backoff.max.ms``,
# 1 s); aiokafka (the faust runtime's producer) retries at this pace, its repeated warnings folded
# by ``streams.logs.FoldedRepeats``.
TRANSACTION_RETRY_BACKOFF_MS = 20


def producer(kafka: Mapping[str, Any], *, transactional_id: str | None = None, linger_ms: int = 5) -> Producer:
    """An idempotent producer; with ``transactional_id``, a transactional one, ready (its
    transactions initialised: a stable id fences a predecessor and aborts its open transaction)."""
    conf: dict[str, Any] = {
        **kafka,
        **SAME_PARTITIONS_AS_JAVA,
        "enable.idempotence": True,
        "linger.ms": linger_ms,
        "compression.type": "lz4",
        "message.max.bytes": MAX_MESSAGE_BYTES,
    }
    if transactional_id is None:
        return Producer(conf)
    client = Producer(
        {
            **conf,
            "transactional.id": transactional_id,
            "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
            "retry.backoff.ms": TRANSACTION_RETRY_BACKOFF_MS,
        }
    )
    try:
        client.init_transactions(60)
    except KafkaException as exc:
        raise ClusterError(f"cannot initialise transactions: {failure(exc)}") from exc
    return client


def group_consumer(kafka: Mapping[str, Any], group_id: str) -> Consumer:
    """A member of a consumer group that processes a topic: committed records only, offsets committed
    by the caller (in its transactions), cooperative rebalancing."""
    return Consumer(
        {
            **kafka,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "cooperative-sticky",
            # A killed worker is noticed in 10 s instead of 45 s: its partitions move on sooner.
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 2_000,
            "fetch.max.bytes": 16_777_216,
            "max.partition.fetch.bytes": MAX_MESSAGE_BYTES,
            # A member subscribed by pattern (the confluent runtime's ingest topics) joins with the
            # topics its metadata matched at that moment, possibly none ("join with 0 subscribed
            # topic(s)"), and matches again only at the next refresh: librdkafka's default is 5
            # minutes, which a joining worker could spend idle, and a new company's ingest topic
            # would wait as long (the faust runtime subscribes by name). Every 10 s instead: one
            # small metadata request per worker.
            "topic.metadata.refresh.interval.ms": 10_000,
        }
    )


def reading_consumer(
    kafka: Mapping[str, Any],
    group_id: str,
    *,
    from_beginning: bool = True,
    auto_commit: bool = False,
    partition_eof: bool = False,
    fetch_wait_ms: int | None = None,
) -> Consumer:
    """A consumer that reads (tools, scans, lag, the index's probes): committed records only.
    ``fetch_wait_ms`` shortens the broker's wait for data (a probe that usually finds none)."""
    conf: dict[str, Any] = {
        **kafka,
        "group.id": group_id,
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "enable.auto.commit": auto_commit,
        "isolation.level": "read_committed",
    }
    if partition_eof:
        conf["enable.partition.eof"] = True
    if fetch_wait_ms is not None:
        conf["fetch.wait.max.ms"] = fetch_wait_ms
    return Consumer(conf)


def admin(kafka: Mapping[str, Any]) -> AdminClient:
    return AdminClient(dict(kafka))


def failure(exc: KafkaException) -> str:
    """What a client error says, for a one-line message: its code's name, and, when no broker
    answered, that (never the client's full error text, which can run to several lines)."""
    error: Any = exc.args[0] if exc.args else None
    name = str(error.name()) if hasattr(error, "name") else type(exc).__name__
    if name in NO_BROKER:
        return f"no Kafka broker answered ({name})"
    return name


NO_BROKER = frozenset({"_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_RESOLVE"})

# What a cluster answers while one of its nodes is down or a leader moves, beside the errors
# librdkafka itself marks retriable: each passes once the cluster has elected new leaders. No broker
# answering at all is not among them: a command pointed at the wrong address says so at once.
PASSING = {
    "_DESTROY_BROKER",
    "_WAIT_COORD",
    "LEADER_NOT_AVAILABLE",
    "NOT_LEADER_FOR_PARTITION",
    "NOT_LEADER_OR_FOLLOWER",
    "NOT_COORDINATOR",
    "COORDINATOR_NOT_AVAILABLE",
    "COORDINATOR_LOAD_IN_PROGRESS",
    "REQUEST_TIMED_OUT",
    "NOT_ENOUGH_REPLICAS",
}
CLUSTER_PATIENCE_S = 90.0  # longer than a node's restart and a controller election

log = logging.getLogger("jointuse.kafka")
Result = TypeVar("Result")


def passing(error: object) -> bool:
    """Whether a client error is one a cluster recovers from by itself (never a fatal one, nor
    one that says no broker answered)."""
    if not isinstance(error, KafkaError) or error.fatal() or str(error.name()) in NO_BROKER:
        return False
    return bool(error.retriable()) or str(error.name()) in PASSING


def patiently(
    operation: Callable[[], Result],
    *,
    what: str,
    patience_s: float = CLUSTER_PATIENCE_S,
    pause_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Result:
    """``operation``, tried again while the cluster answers with a passing error, up to
    ``patience_s``; any other error, or the last passing one, is raised as it came."""
    deadline = clock() + patience_s
    while True:
        try:
            return operation()
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not passing(error) or clock() + pause_s > deadline:
                raise
            log.warning("%s: the cluster answered %s; trying again", what, error.name())  # type: ignore[union-attr]
            sleep(pause_s)
