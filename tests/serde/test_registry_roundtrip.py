"""Round trip through the real broker and registry: register a schema, produce 1,000 records in the
Confluent wire format with confluent-kafka, consume them back, compare."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.policy.classification import ClassifiedSchema
from streams.serde.registry import Registry
from streams.serde.wire import frame, unframe
from streams.settings import Settings
from tests.records import make_native_records

pytestmark = pytest.mark.kafka


def test_thousand_records_round_trip(kafka: Settings, schema: ClassifiedSchema, unique: str) -> None:
    topic = f"test.roundtrip.{unique}"
    admin = AdminClient(kafka.kafka_common())
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(timeout=30)

    registry = Registry(kafka.registry_conf())
    schema_id = registry.register(f"{topic}-value", dict(schema.raw))
    assert registry.register(f"{topic}-value", dict(schema.raw)) == schema_id  # idempotent

    records = make_native_records(1000, seed=7)
    producer = Producer({**kafka.kafka_common(), "enable.idempotence": True})
    codec = registry.codec(schema_id)
    for record in records:
        producer.produce(topic, key=record["customer_id"].encode(), value=frame(schema_id, codec.encode(record)))
    assert producer.flush(30) == 0

    consumer = Consumer({**kafka.kafka_common(), "group.id": f"test-{unique}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = {}
    fresh = Registry(kafka.registry_conf())  # a second client must find the schema by id alone
    try:
        while len(got) < len(records):
            message = consumer.poll(10)
            assert message is not None, f"timed out after {len(got)} records"
            assert message.error() is None
            read_id, body = unframe(message.value())
            got[message.key().decode()] = fresh.codec(read_id).decode(body)
    finally:
        consumer.close()
    assert fresh.lookups == 1
    assert got == {r["customer_id"]: r for r in records}
