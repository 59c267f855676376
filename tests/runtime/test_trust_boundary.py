"""The trust boundary on the real broker and registry, for both runtimes, tried as a group company
would: it registers its own version of its ingest subject and produces with a plain client."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.messages import H_DETAIL, H_REASON
from streams.serde.avro_codec import AvroCodec
from streams.serde.governed import GovernedSchemas
from streams.serde.wire import frame
from streams.settings import Guarantee, Settings
from tests.processors.test_ingest import SECRET, _relabelled
from tests.records import make_native_records
from tests.runtime.helpers import audit_events, read_topic, running_worker, setup_topics

pytestmark = pytest.mark.kafka


def _records(count: int, seed: int) -> list[dict[str, Any]]:
    out = []
    for record in make_native_records(count * 3, seed=seed):
        if record["source_company"] == "jcom" and len(out) < count:
            record["consent"] = {"marketing_opt_out": False, "joint_use_stop": False, "foreign_transfer_consent": False}
            record["medical_history"] = SECRET + "medical"
            record["call_records"] = [{"started_at": 1, "callee_number": SECRET + "callee", "duration_s": 3}]
            record["claims"] = [{"claim_no": SECRET + "claim", "amount_jpy": 5, "diagnosis": SECRET + "diagnosis"}]
            out.append(record)
    return out


@pytest.mark.parametrize("runtime", ["faust", "confluent"])
def test_relabelled_schema_and_poison_record_on_the_broker(kafka: Settings, unique: str, runtime: str) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"b{unique}"})
    topology = setup_topics(settings, partitions=1)
    topic = topology.ingest("jcom")
    v1 = dict(GovernedSchemas.load(settings.schema_dir).versions[0].classified.raw)
    client = SchemaRegistryClient(settings.registry_conf())
    subject = f"{topic}-value"
    client.register_schema(subject, Schema(json.dumps(v1), "AVRO"))
    # The registry accepts the relabelled version: only custom properties changed, BACKWARD holds.
    relabelled = _relabelled(copy.deepcopy(v1))
    relabelled_id = client.register_schema(subject, Schema(json.dumps(relabelled), "AVRO"))
    records = _records(11, seed=31)
    poison = dict(records[5], updated_at=2**62)  # a long any Java producer can write
    producer = Producer(settings.kafka_common())
    codec = AvroCodec(relabelled)
    for index, record in enumerate(records):
        value = frame(relabelled_id, codec.encode(poison if index == 5 else record))
        producer.produce(topic, key=record["customer_id"].encode(), value=value)
    assert producer.flush(30) == 0

    with running_worker(settings, runtime=runtime) as worker:
        events = audit_events(settings, topology, len(records))
        deliveries = read_topic(settings, topology.deliver("jcom-insurance"), expected=len(records) - 1)
        assert worker.poll() is None, "the worker keeps running after a poison record"
    assert [e["reason"] for e in events] == ["shared"] * 5 + ["schema_violation"] + ["shared"] * 5
    assert len(deliveries) == len(records) - 1
    assert not any(SECRET.encode() in (m.value() or b"") for m in deliveries)
    (dead,) = read_topic(settings, topology.dead_letters("jcom"), expected=1)
    headers = dict(dead.headers())
    assert headers[H_REASON] == b"schema_violation"
    assert headers[H_DETAIL].startswith(b"out_of_range at updated_at")


def test_a_plain_confluent_serializer_writes_with_the_published_version(kafka: Settings, unique: str) -> None:
    """After `jointuse schemas publish`, a producer that does not register schemas (the settings
    in docs/policy.md) writes with the latest governed version, and its records are delivered."""
    from typer.testing import CliRunner

    from streams.cli.main import app

    settings = kafka.model_copy(update={"topic_prefix": f"s{unique}"})
    topology = setup_topics(settings, partitions=1)
    published = CliRunner().invoke(app, ["schemas", "publish", "--prefix", settings.topic_prefix])
    assert published.exit_code == 0, published.output
    client = SchemaRegistryClient(settings.registry_conf())
    serializer = AvroSerializer(
        client,
        conf={
            "auto.register.schemas": False,
            "use.latest.version": True,
            # The default strategy first asks for "associations", which this registry can leave hanging.
            "subject.name.strategy": topic_subject_name_strategy,
        },
    )
    records = _records(3, seed=32)
    producer = Producer(settings.kafka_common())
    topic = topology.ingest("jcom")
    for record in records:
        value = serializer(record, SerializationContext(topic, MessageField.VALUE))
        producer.produce(topic, key=record["customer_id"].encode(), value=value)
    assert producer.flush(30) == 0
    with running_worker(settings, runtime="confluent"):
        events = audit_events(settings, topology, len(records))
    assert [e["reason"] for e in events] == ["shared"] * len(records)
    assert len({e["schema_id"] for e in events}) == 1


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
FORGED = b"FORGED-BY-A-PRODUCER"


@pytest.mark.parametrize("guarantee", list(Guarantee))
@pytest.mark.parametrize("runtime", ["faust", "confluent"])
def test_only_committed_input_is_shared_and_no_producer_header_reaches_a_recipient(
    kafka: Settings, unique: str, runtime: str, guarantee: Guarantee
) -> None:
    """A company's loader with a Kafka transaction commits 5 records and aborts 5 (an ETL job that
    rolls back a bad load): exactly the 5 committed are decided. Every record carries forged
    ``jointuse-*`` headers and a side channel; one carries a valid W3C traceparent."""
    settings = kafka.model_copy(update={"topic_prefix": f"h{unique}"})
    topology = setup_topics(settings, partitions=1)
    topic = topology.ingest("jcom")
    committed, aborted = _records(5, seed=41), _records(10, seed=42)[5:]
    forged = [
        ("jointuse-purposes", FORGED),
        ("jointuse-trace-id", FORGED),
        ("jointuse-policy-version", FORGED),
        ("x-side-channel", FORGED),
    ]
    traced = [*forged, ("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01".encode())]
    produce_in_transactions(
        settings,
        topic,
        [(aborted[:2], False), (committed, True), (aborted[2:], False)],
        transactional_id=f"jcom-loader-{unique}",
        headers=lambda index: traced if index == 0 else forged,
    )
    with running_worker(settings, runtime=runtime, guarantee=guarantee):
        events = audit_events(settings, topology, len(committed))
        deliveries = read_topic(settings, topology.deliver("jcom-insurance"), expected=len(committed))
    assert sorted(e["input"]["offset"] for e in events) == sorted({e["input"]["offset"] for e in events})
    assert len(events) == len(committed), "an aborted record was decided"
    assert {e["subject"] for e in events} == {e["subject"] for e in events if e["reason"] == "shared"}
    assert len(deliveries) == len(committed)
    committed_keys = {f"jcom:{r['customer_id']}".encode() for r in committed}
    assert {m.key() for m in deliveries} == committed_keys
    for message in deliveries:
        names = [name for name, _ in message.headers()]
        assert "x-side-channel" not in names
        assert not any(FORGED in (value or b"") for _, value in message.headers())
    traces = sorted(e["trace_id"] for e in events)
    assert TRACE in traces and all(len(t) == 32 for t in traces)
    assert not any(FORGED.decode() in json.dumps(e) for e in events)


def produce_in_transactions(
    settings: Settings,
    topic: str,
    transactions: list[tuple[list[dict[str, Any]], bool]],
    *,
    transactional_id: str,
    headers: Any = lambda index: [],
) -> None:
    """A company's exactly-once loader: each (records, commit) is one Kafka transaction, committed or
    aborted after its records reached the log. ``headers(index)`` are a record's headers."""
    v1 = dict(GovernedSchemas.load(settings.schema_dir).versions[0].classified.raw)
    schema_id = SchemaRegistryClient(settings.registry_conf()).register_schema(
        f"{topic}-value", Schema(json.dumps(v1), "AVRO")
    )
    codec = AvroCodec(v1)
    producer = Producer({**settings.kafka_common(), "transactional.id": transactional_id})
    producer.init_transactions(30)
    for records, commit in transactions:
        producer.begin_transaction()
        for index, record in enumerate(records):
            value = frame(schema_id, codec.encode(record))
            producer.produce(topic, key=record["customer_id"].encode(), value=value, headers=headers(index))
        if commit:
            producer.commit_transaction(30)
        else:
            producer.flush(30)  # the records are in the log, then the transaction is aborted
            producer.abort_transaction(30)
