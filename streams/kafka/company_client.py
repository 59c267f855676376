"""What a group company's tools do with Kafka: produce JSON Lines to its ingest topic, consume
decoded records, read a topic back. Used by the CLI, the demo, the bench and the broker tests;
progress is reported through a callback, so that the caller chooses how to show it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import KafkaException, Message, Producer

from streams.errors import ClusterError, SerdeError
from streams.kafka import clients
from streams.kafka.produce import produce_waiting
from streams.messages import OutMessage
from streams.policy.engine import Engine
from streams.policy.loader import load_policies
from streams.serde.governed import governed_version
from streams.serde.json_form import JsonForm
from streams.serde.jsonl import Rejected, encode_lines
from streams.serde.registry import Registry
from streams.serde.wire import unframe
from streams.settings import Settings
from streams.topology import Topology


@dataclass
class ProduceStats:
    topic: str
    produced: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.produced / self.seconds if self.seconds else 0.0


def producer(settings: Settings) -> Producer:
    return clients.producer(settings.kafka_common(), linger_ms=20)


def produce_lines(
    settings: Settings,
    company: str,
    lines: Iterable[bytes],
    *,
    schema_version: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ProduceStats:
    """Validates and produces JSON Lines to ``company``'s ingest topic, written with a governed
    schema version (the latest unless given)."""
    classified = governed_version(settings.schema_dir, schema_version).classified
    engine = Engine(classified, load_policies(settings.policy_path))
    topic = Topology(settings.topic_prefix).ingest(company)
    registry = Registry(settings.registry_conf())
    schema_id = registry.register(f"{topic}-value", dict(classified.raw))
    stats = ProduceStats(topic)
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    client = producer(settings)
    started = time.perf_counter()
    for outcome in encode_lines(
        lines, engine=engine, form=JsonForm(classified), codec=registry.codec(schema_id), schema_id=schema_id
    ):
        if isinstance(outcome, Rejected):
            stats.rejected.append(outcome)
            continue
        produce_waiting(client, OutMessage(topic, outcome.key, outcome.value, []), on_delivery=delivered)
        stats.produced += 1
        if on_progress is not None and stats.produced % 1000 == 0:
            on_progress(stats.produced)
    remaining = client.flush(60)
    stats.seconds = time.perf_counter() - started
    if remaining or failures:
        raise ClusterError(f"{remaining + len(failures)} record(s) were not acknowledged by the broker")
    return stats


def consume_json(
    settings: Settings,
    *,
    company: str | None,
    topic: str | None,
    follow: bool,
    from_beginning: bool,
    max_records: int | None,
    group: str | None,
    idle_seconds: float = 5.0,
) -> Iterator[dict[str, Any]]:
    """Decoded records with their headers, as JSON-ready dicts. Without ``follow``, stops after
    ``idle_seconds`` without a new record."""
    ensure_reachable(settings)  # else a missing broker would look like an empty topic
    topology = Topology(settings.topic_prefix)
    name = topic or topology.deliver(str(company))
    form = JsonForm(governed_version(settings.schema_dir).classified)  # older versions' records read too
    registry = Registry(settings.registry_conf())
    consumer = clients.reading_consumer(
        settings.kafka_common(), group or f"{company or 'cli'}.cli", from_beginning=from_beginning, auto_commit=True
    )
    consumer.subscribe([name])
    seen = 0
    last = time.monotonic()
    try:
        while max_records is None or seen < max_records:
            message = consumer.poll(0.5)
            if message is None:
                if not follow and time.monotonic() - last > idle_seconds:
                    return
                continue
            if message.error():
                raise ClusterError(f"consume from {name} failed ({message.error()})")
            last = time.monotonic()
            seen += 1
            yield printable(message, registry, form)
    finally:
        consumer.close()


def printable(message: Any, registry: Registry, form: JsonForm) -> dict[str, Any]:
    """A consumed message as `jointuse consume` prints it: position, key, headers, and the record
    (Avro in the wire format decoded, the project's JSON topics parsed) or why there is none."""
    headers = {k: v.decode("utf-8", "replace") for k, v in (message.headers() or [])}
    key = message.key().decode("utf-8", "replace") if message.key() else None
    out: dict[str, Any] = {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "key": key,
        "headers": headers,
    }
    if message.value() is None:
        out["record"] = None  # a tombstone
        return out
    value = message.value()
    if not value.startswith(b"\x00"):  # not Avro in the wire format: the JSON topics (audit, notices, ...)
        try:
            out["record"] = orjson.loads(value)
        except orjson.JSONDecodeError:
            out["error"] = "neither_avro_nor_json"
        return out
    try:
        schema_id, body = unframe(value)
        out["record"] = form.to_json(registry.codec(schema_id).decode(body))
    except SerdeError as exc:
        out["error"] = exc.reason
    return out


def ensure_reachable(settings: Settings, timeout: float = 10) -> None:
    """``ClusterError`` naming the bootstrap address when no broker answers within ``timeout``."""
    topic_partition_counts(settings, timeout)


def topic_partition_counts(settings: Settings, timeout: float = 10) -> dict[str, int]:
    """Every topic the cluster lists, with its partition count. Over TLS, a session that cannot be
    made is told as what it is (``TlsError``), not as a broker that does not answer."""
    from confluent_kafka.admin import AdminClient

    from streams.kafka.tls import check_tls

    check_tls(settings, timeout)

    try:
        metadata = AdminClient(settings.kafka_common()).list_topics(timeout=timeout)
    except KafkaException as exc:
        cause = exc.args[0].name() if exc.args and hasattr(exc.args[0], "name") else type(exc).__name__
        raise ClusterError(f"no Kafka broker at {settings.bootstrap_servers} ({cause})") from exc
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def read_committed(
    settings: Settings,
    topic: str,
    *,
    expected: int | None = None,
    timeout: float = 60,
    quiet: float = 3.0,
    group: str | None = None,
) -> list[Message]:
    """Committed messages of ``topic`` from the beginning: until ``expected`` arrived (then one more
    second, so that anything beyond it is seen too), or ``quiet`` seconds without a message."""
    consumer = clients.reading_consumer(settings.kafka_common(), group or f"reader-{time.time_ns()}")
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.3)
            if message is None or message.error():
                if expected is None and time.monotonic() - last > quiet:
                    break
                continue
            last = time.monotonic()
            out.append(message)
            if expected is not None and len(out) >= expected:
                deadline = min(deadline, time.monotonic() + 1.0)
                expected = None
                quiet = 1.0
    finally:
        consumer.close()
    return out
