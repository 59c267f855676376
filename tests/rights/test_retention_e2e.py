"""The retention job on the real broker: an old delivery is tombstoned, a recent one is not."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from confluent_kafka import Producer

from streams.kafka.clients import SAME_PARTITIONS_AS_JAVA
from streams.kafka.company_client import read_committed
from streams.messages import H_ITEMS, H_SOURCE
from streams.policy.loader import load_policies
from streams.rights.retention import run_retention
from streams.settings import Settings
from tests.cli.helpers import run_cli
from tests.runtime.helpers import audit_events, produce_generated, running_worker, setup_topics

pytestmark = pytest.mark.kafka


def test_expired_subjects_are_tombstoned_once_and_recipients_told(kafka: Settings, unique: str) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"k{unique}"})
    topology = setup_topics(settings, partitions=2)
    policy = load_policies(settings.policy_path).latest
    produced = produce_generated(settings, 60, seed=21)
    # The faust worker writes deliveries with aiokafka, the job its tombstones with librdkafka: both
    # must choose the same partition for a key, or compaction would never erase anything.
    with running_worker(settings, runtime="faust"):
        events = audit_events(settings, topology, sum(produced.values()), timeout=90)
    target = topology.deliver("jcom-insurance")
    recent = {m.key() for m in read_committed(settings, target, expected=None, quiet=1.5)}
    assert recent

    # A delivery made six years ago, as the pipeline would have written it then (P5Y for every item).
    old_key = b"jcom:jcom-old-subject"
    six_years_ago = int((time.time() - 6 * 365 * 86_400) * 1000)
    producer = Producer({**settings.kafka_common(), **SAME_PARTITIONS_AS_JAVA})
    producer.produce(
        target,
        key=old_key,
        value=b"\x00\x00\x00\x00\x01",
        headers=[(H_ITEMS, b"name,email"), (H_SOURCE, b"jcom")],
        timestamp=six_years_ago,
    )
    assert producer.flush(30) == 0

    now = dt.datetime.now(dt.UTC)
    assert run_retention(settings, policy, as_of=now, dry_run=True).tombstoned[target] == 1
    result = run_retention(settings, policy, as_of=now)
    assert result.tombstoned == {topology.deliver("jcom"): 0, target: 1}
    messages = read_committed(settings, target, expected=None, quiet=1.5)
    assert [m.key() for m in messages if m.value() is None] == [old_key]
    assert run_retention(settings, policy, as_of=now).total == 0  # idempotent: already tombstoned

    # Five years and a day later, every delivery has expired, in both topics.
    later = now + dt.timedelta(days=5 * 365 + 1)
    out = run_cli(["retention", "run", "--as-of", later.isoformat()], settings).stdout
    shared_to = {r for e in events for r in e["recipients"]}
    expected_total = len(recent) + sum(
        len({m.key() for m in read_committed(settings, topology.deliver(c), expected=None, quiet=1.0)} - {old_key})
        for c in shared_to - {"jcom-insurance"}
    )
    assert f"tombstoned {expected_total}" in out, out
    notices = [
        json.loads(m.value())
        for company in ("jcom", "jcom-insurance")
        for m in read_committed(settings, topology.notices(company), expected=None, quiet=1.5)
    ]
    assert len(notices) == 1 + expected_total
    assert {n["type"] for n in notices} == {"retention_expired"}
    assert {n["subject_key"] for n in notices if n["recipient"] == "jcom-insurance"} == {
        k.decode() for k in recent | {old_key}
    }
    # Each tombstone is in its delivery's partition, where compaction can erase the delivery.
    for company in shared_to:
        partitions: dict[bytes, set[int]] = {}
        for message in read_committed(settings, topology.deliver(company), expected=None, quiet=1.0):
            partitions.setdefault(message.key(), set()).add(message.partition())
        assert all(len(p) == 1 for p in partitions.values()), "a tombstone went to another partition"
