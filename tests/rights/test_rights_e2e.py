"""Stop of use, resume, erasure with compaction, and the disclosure report, on the real broker."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from streams.devtools.synthetic import Generator, Mix, to_line
from streams.kafka.company_client import produce_lines, read_committed
from streams.messages import H_ITEMS, H_POLICY_VERSION, H_PURPOSES
from streams.rights.core.rules import RightsAction
from streams.rights.requests import file_request
from streams.settings import Settings
from streams.topology import Topology
from tests.cli.helpers import run_cli
from tests.runtime.helpers import audit_events, running_index, running_worker, setup_topics, with_index

pytestmark = pytest.mark.kafka
SHAREABLE = Mix(invalid=0.0, joint_use_stop=0.0, marketing_opt_out=0.0)


def _jcom_records(count: int, seed: int) -> list[dict[str, Any]]:
    records = [r for _, r in Generator(seed=seed, mix=SHAREABLE).records(count * 3) if isinstance(r, dict)]
    return [r for r in records if r["source_company"] == "jcom"][:count]


def _produce(settings: Settings, record: dict[str, Any]) -> None:
    produce_lines(settings, "jcom", [to_line(record).encode()])


def _events_of(settings: Settings, topology: Topology, customer_id: str) -> list[dict[str, Any]]:
    subject = settings.subject_keys().subject("jcom", customer_id)
    messages = read_committed(settings, topology.audit, expected=None, quiet=1.5)
    return [e for e in (json.loads(m.value()) for m in messages) if e["subject"] == subject]


def _until(settings: Settings, topology: Topology, record: dict[str, Any], wanted: str, timeout: float = 30) -> float:
    """Produces the subject's record every second until one is decided ``wanted``; returns the seconds it took."""
    started = time.monotonic()
    seen = len(_events_of(settings, topology, record["customer_id"]))
    while time.monotonic() - started < timeout:
        _produce(settings, record)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            events = _events_of(settings, topology, record["customer_id"])
            if len(events) > seen and events[-1]["reason"] == wanted:
                return time.monotonic() - started
        seen = len(_events_of(settings, topology, record["customer_id"]))
    raise AssertionError(f"no record of the subject was decided {wanted} within {timeout} s")


@pytest.mark.parametrize("runtime", ["faust", "confluent"])
def test_stop_withholds_later_records_within_seconds_and_resume_restores_sharing(
    kafka: Settings, unique: str, runtime: str
) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"r{unique}"})
    topology = setup_topics(settings, partitions=2)
    subject, bystander = _jcom_records(2, seed=11)
    _produce(settings, subject)
    _produce(settings, bystander)
    with running_worker(settings, runtime=runtime):
        assert {e["reason"] for e in audit_events(settings, topology, 2, timeout=90)} == {"shared"}

        file_request(settings, RightsAction.STOP, subject["customer_id"], "jcom")
        stop_seconds = _until(settings, topology, subject, "stop_of_use")
        _produce(settings, bystander)  # somebody else's records are still shared

        file_request(settings, RightsAction.RESUME, subject["customer_id"], "jcom")
        resume_seconds = _until(settings, topology, subject, "shared")
        print(f"{runtime}: stop applied within {stop_seconds:.1f} s, resume within {resume_seconds:.1f} s")
    assert stop_seconds < 10 and resume_seconds < 10
    bystander_events = _events_of(settings, topology, bystander["customer_id"])
    assert [e["reason"] for e in bystander_events] == ["shared", "shared"]
    # Nothing of the subject was delivered while the stop was in force.
    deliveries = read_committed(settings, topology.deliver("jcom-insurance"), expected=None, quiet=1.5)
    subject_key = f"jcom:{subject['customer_id']}".encode()
    shared_events = [e for e in _events_of(settings, topology, subject["customer_id"]) if e["status"] == "shared"]
    assert sum(1 for m in deliveries if m.key() == subject_key) == len(shared_events)


def _compact_fast(settings: Settings, topic: str) -> None:
    """Small segments and no tombstone retention, so the log cleaner acts within seconds."""
    admin = AdminClient(settings.kafka_common())
    settings_ = {
        "cleanup.policy": "compact,delete",
        "segment.ms": "1000",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "0",
        "min.compaction.lag.ms": "0",
    }
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in settings_.items()]
    resource = ConfigResource("topic", topic, incremental_configs=entries)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


@pytest.mark.parametrize("runtime", ["faust", "confluent"])
def test_erasure_tombstones_every_delivery_and_compaction_forgets_the_subject(
    kafka: Settings, unique: str, runtime: str, tmp_path: Path
) -> None:
    settings = with_index(
        kafka.model_copy(update={"topic_prefix": f"e{unique}", "erasure_grace_seconds": 1.0}), str(tmp_path)
    )
    topology = setup_topics(settings, partitions=1)
    target = topology.deliver("jcom-insurance")
    _compact_fast(settings, target)
    records = _jcom_records(10, seed=12)
    subject = records[3]
    key = f"jcom:{subject['customer_id']}".encode()
    for record in records:
        _produce(settings, record)
    with running_worker(settings, runtime=runtime), running_index(settings):
        audit_events(settings, topology, len(records), timeout=90)

        # The disclosure report matches what was delivered.
        report = json.loads(
            run_cli(
                [
                    "rights",
                    "report",
                    subject["customer_id"],
                    "--source",
                    "jcom",
                    "--format",
                    "json",
                    "--wait",
                    "30",
                    "--verified-by",
                    "x",
                ],
                settings,
            ).stdout
        )
        delivered = [m for m in read_committed(settings, target, expected=None, quiet=1.5) if m.key() == key]
        assert len(delivered) == 1 and len(report["disclosures"]) == 1
        row, headers = report["disclosures"][0], dict(delivered[0].headers())
        assert row["recipient"] == "jcom-insurance"
        assert ",".join(row["items"]) == headers[H_ITEMS].decode()
        assert ",".join(row["purposes"]) == headers[H_PURPOSES].decode()
        assert row["policy_version"] == headers[H_POLICY_VERSION].decode() == "2026-01"

        request = file_request(settings, RightsAction.ERASE, subject["customer_id"], "jcom")
        deadline = time.monotonic() + 60
        tombstones: list[Any] = []
        while not tombstones and time.monotonic() < deadline:
            messages = read_committed(settings, target, expected=None, quiet=1.0)
            tombstones = [m for m in messages if m.key() == key and m.value() is None]
        assert len(tombstones) == 1, "no tombstone for the erased subject"
        notices = [
            json.loads(m.value())
            for m in read_committed(settings, topology.notices("jcom-insurance"), expected=1, timeout=30)
        ]
        assert notices == [
            {
                "type": "erasure",
                "request_id": request.request_id,
                "recipient": "jcom-insurance",
                "subject_key": key.decode(),
                "source": "jcom",
                "requested_at": request.requested_at.isoformat(),
                "issued_at": notices[0]["issued_at"],
            }
        ]
        # The jcom delivery topic never held the subject (jcom is its source): no tombstone there.
        assert not [m for m in read_committed(settings, topology.deliver("jcom"), expected=None, quiet=1.0)]
        # A later record of the erased subject is withheld.
        _produce(settings, subject)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reasons = [e["reason"] for e in _events_of(settings, topology, subject["customer_id"])]
            if len(reasons) == 2:
                break
        assert reasons == ["shared", "stop_of_use"]

        # Compaction: keep writing other subjects so segments roll, until the subject is gone.
        others = _jcom_records(40, seed=13)
        deadline = time.monotonic() + 90
        remaining = [1]
        while remaining and time.monotonic() < deadline:
            _produce(settings, others.pop())
            time.sleep(1.5)
            messages = read_committed(settings, target, expected=None, quiet=1.0, group=f"fresh-{time.time_ns()}")
            remaining = [m for m in messages if m.key() == key and m.value() is not None]
        assert not remaining, "the erased subject's delivery survived compaction"
        survivors = {m.key() for m in messages if m.value() is not None}
        assert len(survivors) >= len(records) - 1  # everybody else is still there
    print(f"compaction removed the subject; {len(messages)} messages left in {target}")
