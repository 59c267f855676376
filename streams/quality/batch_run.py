"""``jointuse dq run``: a range of an ingest or delivery topic, validated as one batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.errors import ConfigError, SerdeError
from streams.kafka.reader import RangeSpec, read_range
from streams.messages import H_POLICY_VERSION, H_PURPOSES
from streams.quality.frames import delivery_frame, ingest_frame
from streams.quality.suites_store import load_suites
from streams.quality.validate import SuiteResult, validate
from streams.serde.governed import governed_version
from streams.serde.json_form import JsonForm
from streams.serde.registry import Registry
from streams.serde.wire import unframe
from streams.settings import Settings
from streams.topology import SCHEMA_MAJOR, Topology


@dataclass(frozen=True)
class BatchRun:
    result: SuiteResult
    read: int
    undecodable: int
    tombstones: int

    @property
    def success(self) -> bool:
        return self.result.success and self.undecodable == 0


def topic_kind(topology: Topology, topic: str) -> tuple[str, str]:
    """("ingest" | "delivery", company) of a pipeline topic."""
    company = topology.company_of_ingest(topic)
    if company is not None:
        return "ingest", company
    head, tail = f"{topology.prefix}.deliver.", f".customer.{SCHEMA_MAJOR}"
    if topic.startswith(head) and topic.endswith(tail) and len(topic) > len(head) + len(tail):
        return "delivery", topic[len(head) : -len(tail)]
    raise ConfigError(f"{topic} is neither an ingest nor a delivery topic of prefix {topology.prefix}")


def run_batch(
    settings: Settings,
    spec: RangeSpec,
    *,
    docs_dir: Path | None,
    max_records: int,
    on_progress: Callable[[int], None] = lambda done: None,
) -> BatchRun:
    topology = Topology(settings.topic_prefix)
    kind, company = topic_kind(topology, spec.topic)
    schema = governed_version(settings.schema_dir).classified  # reads the older versions' records too
    form = JsonForm(schema)
    registry = Registry(settings.registry_conf())
    rows: list[dict[str, Any]] = []
    read = undecodable = tombstones = 0
    group = f"{settings.topic_prefix}.auditor.dq"
    for batch in read_range(settings.kafka_common(), spec, group_id=group, on_progress=on_progress):
        for message in batch:
            read += 1
            if message.value() is None:
                tombstones += 1
                continue
            try:
                schema_id, body = unframe(message.value())
                record = form.to_json(registry.codec(schema_id).decode(body))
            except (SerdeError, ValueError):
                undecodable += 1
                continue
            if kind == "ingest":
                rows.append(record)
            else:
                headers = dict(message.headers() or [])
                rows.append(
                    {
                        "recipient": company,
                        "purposes": _text(headers.get(H_PURPOSES)),
                        "policy_version": _text(headers.get(H_POLICY_VERSION)),
                        "record": record,
                    }
                )
            if len(rows) >= max_records:
                break
        if len(rows) >= max_records:
            break
    columns = [f.name for f in schema.fields]
    frame = ingest_frame(rows, columns) if kind == "ingest" else delivery_frame(rows, columns)
    suite = load_suites(settings.dq_suites_dir)[kind]
    if docs_dir is not None:
        docs_dir.mkdir(parents=True, exist_ok=True)
    return BatchRun(validate(frame, suite, docs_dir=docs_dir), read, undecodable, tombstones)


def _text(value: str | bytes | None) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
