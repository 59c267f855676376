"""The peer: the same policy as a Quix Streams application (run in its own venv, ``.venv-peer``).

quixstreams pins confluent-kafka < 2.13 and pydantic < 2.14, older than the project's, so the bench
installs it apart and runs this file with ``PYTHONPATH`` at the project root. It imports only the
pure policy engine and the fastavro codec, which work with either set of versions. For each input
record: decode, decide, encode the deliveries, send them to the recipients' delivery topics and an
audit event to the audit topic (what the bench's watcher counts), under Quix's exactly-once.

Usage: python bench/peer_quix.py PREFIX  (settings from the JOINTUSE_* environment)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from quixstreams import Application
from quixstreams.kafka.configuration import ConnectionConfig

from streams.policy.classification import delivery_schema, load_schema
from streams.policy.engine import Engine
from streams.policy.loader import load_policies
from streams.serde.avro_codec import AvroCodec

ROOT = Path(__file__).resolve().parent.parent


def connection() -> ConnectionConfig:
    conf: dict[str, Any] = {"bootstrap_servers": os.environ["JOINTUSE_BOOTSTRAP_SERVERS"]}
    protocol = os.environ.get("JOINTUSE_SECURITY_PROTOCOL", "PLAINTEXT")
    if protocol != "PLAINTEXT":
        conf["security_protocol"] = protocol.lower()
    if protocol.startswith("SASL"):
        password_file = os.environ.get("JOINTUSE_SASL_PASSWORD_FILE")
        password = Path(password_file).read_text().strip() if password_file else os.environ["JOINTUSE_SASL_PASSWORD"]
        conf["sasl_mechanism"] = os.environ["JOINTUSE_SASL_MECHANISM"]
        conf["sasl_username"] = os.environ["JOINTUSE_SASL_USERNAME"]
        conf["sasl_password"] = password
    return ConnectionConfig(**conf)


def main() -> None:
    prefix = sys.argv[1]
    schema = load_schema(ROOT / "schemas" / "customer_record.v1.avsc")
    engine = Engine(schema, load_policies(ROOT / "policies"))
    reader, writer = AvroCodec(schema.raw), AvroCodec(delivery_schema(schema))
    recipients = [u.id for u in engine.policies.latest.joint_users]
    app = Application(
        broker_address=connection(),
        consumer_group=f"{prefix}.peer-quix",
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=0.5,
        loglevel="WARNING",
        state_dir=str(ROOT / ".local" / "peer-quix"),
    )
    source = app.topic(f"{prefix}.ingest.jcom.customer.v1", key_deserializer="bytes", value_deserializer="bytes")
    audit = app.topic(f"{prefix}.audit.v1", value_serializer="bytes")
    deliver = {r: app.topic(f"{prefix}.deliver.{r}.customer.v1", value_serializer="bytes") for r in recipients}

    def process(value: bytes, key: bytes, timestamp: int, headers: Any) -> dict[str, Any]:
        record = reader.decode(memoryview(value)[5:])
        decision = engine.decide(record, "jcom", now=dt.datetime.now(dt.UTC), trusted=True)
        out = {r: value[:5] + writer.encode(d.record) for r, d in decision.deliveries.items()}
        event = {"status": decision.status.value, "input": {"timestamp_ms": timestamp}}
        return {"deliveries": out, "audit": json.dumps(event).encode()}

    sdf = app.dataframe(source)
    sdf = sdf.apply(process, metadata=True)
    for recipient, topic in deliver.items():
        branch = sdf.filter(lambda v, r=recipient: r in v["deliveries"])
        branch.apply(lambda v, r=recipient: v["deliveries"][r]).to_topic(topic)
    sdf.apply(lambda v: v["audit"]).to_topic(audit)
    app.run()


if __name__ == "__main__":
    main()
