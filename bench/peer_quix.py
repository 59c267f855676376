"""The peer: the same policy as a Quix Streams application (run in its own venv, ``.venv-peer``).

quixstreams pins confluent-kafka < 2.13 and pydantic < 2.14, older than the project's, so the bench
installs it apart and runs this file with ``PYTHONPATH`` at the project root. It imports only the
pure policy engine, which works with either set of versions. For each input record: decode, decide,
encode the deliveries, send them to the recipients' delivery topics and an audit event to the audit
topic (what the bench's watcher counts), under Quix's exactly-once.

Its Avro is fastavro, the library Quix Streams' own Avro serializers use, called at its fastest
(logical types stripped; on writing, every container inside a union names its branch, which spares
fastavro a validation per union): the worker's faster codec, cavro, counts as the worker's own.

Usage: python bench/peer_quix.py PREFIX  (settings from the JOINTUSE_* environment)
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import fastavro
from quixstreams import Application
from quixstreams.kafka.configuration import ConnectionConfig

from streams.policy.classification import delivery_schema, load_schema
from streams.policy.engine import Engine
from streams.policy.loader import load_policies
from streams.serde.avro_schema import strip_logical_types

ROOT = Path(__file__).resolve().parent.parent


class FastavroCodec:
    def __init__(self, schema: dict[str, Any]) -> None:
        stripped = strip_logical_types(schema)
        self.parsed = fastavro.parse_schema(stripped)
        self._tag = _tagger(self.parsed)  # parsed: records carry their full names

    def decode(self, body: bytes | memoryview) -> Any:
        return fastavro.schemaless_reader(io.BytesIO(body), self.parsed, None)

    def encode(self, record: Any) -> bytes:
        stream = io.BytesIO()
        fastavro.schemaless_writer(stream, self.parsed, self._tag(record))
        return stream.getvalue()


def _tagger(schema: Any) -> Any:
    """A copy of a value with each record, map or array inside a union in fastavro's tuple notation
    (``(branch name, value)``). Inline types only (the shipped schema has no reference)."""
    if isinstance(schema, list):
        kinds = {_kind(b): (_name(b), _tagger(b)) for b in schema if _kind(b) in ("record", "map", "array")}
        by_type: dict[type, tuple[str, Any] | None] = {
            dict: kinds.get("record") or kinds.get("map"),
            list: kinds.get("array"),
        }

        def union(value: Any) -> Any:
            branch = by_type.get(type(value))
            return value if branch is None else (branch[0], branch[1](value))

        return union
    kind = _kind(schema)
    if kind == "record":
        inside = [(f["name"], _tagger(f["type"])) for f in schema["fields"] if _holds_containers(f["type"])]

        def record(value: Any) -> Any:
            out = dict(value)
            for name, tag in inside:
                if out.get(name) is not None:
                    out[name] = tag(out[name])
            return out

        return record
    if kind == "array":
        element = _tagger(schema["items"])
        return lambda values: [element(v) for v in values]
    if kind == "map":
        element = _tagger(schema["values"])
        return lambda values: {k: element(v) for k, v in values.items()}
    return lambda value: value


def _holds_containers(schema: Any) -> bool:
    kind = _kind(schema)
    if kind == "union":
        return any(_holds_containers(b) for b in schema)
    return kind in ("record", "map", "array")


def _kind(schema: Any) -> str:
    return schema["type"] if isinstance(schema, dict) else "union" if isinstance(schema, list) else str(schema)


def _name(schema: Any) -> str:
    return str(schema["name"] if schema.get("type") == "record" else schema["type"])


def connection() -> ConnectionConfig:
    conf: dict[str, Any] = {"bootstrap_servers": os.environ["JOINTUSE_BOOTSTRAP_SERVERS"]}
    protocol = os.environ.get("JOINTUSE_SECURITY_PROTOCOL", "PLAINTEXT")
    if protocol != "PLAINTEXT":
        conf["security_protocol"] = protocol.lower()
    if protocol.endswith("SSL") and os.environ.get("JOINTUSE_SSL_CA_FILE"):
        conf["ssl_ca_location"] = os.environ["JOINTUSE_SSL_CA_FILE"]
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
    # The worker's policy (its joint users are the recipients), as the worker's settings give it.
    engine = Engine(schema, load_policies(os.environ.get("JOINTUSE_POLICY_PATH") or ROOT / "policies"))
    reader, writer = FastavroCodec(dict(schema.raw)), FastavroCodec(delivery_schema(schema))
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
