"""Erasure on the real broker, at scale and at the edge: a hundred requests filed within a second, at
the default grace, are all done within the grace plus a minute, while the erasure consumer stays in
its group (no rebalance); a subject stopped just before its erasure gets no delivery after its
tombstone."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from streams.devtools.synthetic import to_line
from streams.kafka.company_client import produce_lines, read_committed
from streams.rights.core.rules import RightsAction
from streams.rights.requests import file_request, file_requests
from streams.settings import Settings
from tests.rights.test_rights_e2e import _jcom_records
from tests.runtime.helpers import audit_events, running_index, running_worker, setup_topics, with_index

pytestmark = pytest.mark.kafka
DEFAULT_GRACE_SECONDS = Settings.model_fields["erasure_grace_seconds"].default


def _members(settings: Settings, group: str) -> tuple[str, ...]:
    """The member ids of a consumer group: a rebalance that evicts a member changes them."""
    admin = AdminClient(settings.kafka_common())  # kept until the answer: its futures die with it
    (future,) = admin.describe_consumer_groups([group], request_timeout=10).values()
    return tuple(sorted(m.member_id for m in future.result(15).members))


def _notices(settings: Settings, recipients: set[str]) -> list[dict[str, object]]:
    from streams.topology import Topology

    topology = Topology(settings.topic_prefix)
    return [
        json.loads(m.value())
        for r in sorted(recipients)
        for m in read_committed(settings, topology.notices(r), expected=None, quiet=1.0)
    ]


@pytest.mark.parametrize("runtime", ["faust", "confluent"])
def test_a_hundred_erasures_filed_at_once_are_done_within_the_grace_and_a_minute_without_a_rebalance(
    kafka: Settings, unique: str, runtime: str, tmp_path: Path
) -> None:
    settings = with_index(
        kafka.model_copy(update={"topic_prefix": f"s{unique}", "erasure_grace_seconds": DEFAULT_GRACE_SECONDS}),
        str(tmp_path),
    )
    topology = setup_topics(settings, partitions=2)
    records = _jcom_records(100, seed=41)
    assert len({r["customer_id"] for r in records}) == 100
    produce_lines(settings, "jcom", [to_line(r).encode() for r in records])
    group = f"{settings.topic_prefix}.pipeline" + ("-confluent-rights" if runtime == "confluent" else "")
    with running_worker(settings, runtime=runtime), running_index(settings):
        events = audit_events(settings, topology, len(records), timeout=120)
        reached = {(e["subject"], r) for e in events if e["status"] == "shared" for r in e["recipients"]}
        recipients = {r for _, r in reached}
        deadline = time.monotonic() + 60
        while not (members := _members(settings, group)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert members, "the erasure consumer never joined its group"

        filed_at = time.monotonic()
        requests = file_requests(settings, RightsAction.ERASE, [(r["customer_id"], "jcom") for r in records])
        filing = time.monotonic() - filed_at
        # Filed together, so that they come due together: well within the grace, whatever the load.
        assert len(requests) == 100 and filing < DEFAULT_GRACE_SECONDS / 4, filing

        deadline = filed_at + DEFAULT_GRACE_SECONDS + 60
        notices: list[dict[str, object]] = []
        while len(notices) < len(reached) and time.monotonic() < deadline:
            assert _members(settings, group) == members, "the erasure consumer's group rebalanced"
            time.sleep(2)
            notices = _notices(settings, recipients)
        done_after = time.monotonic() - filed_at
        assert _members(settings, group) == members, "the erasure consumer's group rebalanced"
    assert len(notices) == len(reached), f"{len(notices)} of {len(reached)} notices after {done_after:.0f} s"
    assert {n["request_id"] for n in notices} <= {r.request_id for r in requests}
    assert done_after >= DEFAULT_GRACE_SECONDS  # none before its grace
    tombstones = [
        m
        for r in recipients
        for m in read_committed(settings, topology.deliver(r), expected=None, quiet=1.0)
        if m.value() is None
    ]
    assert len(tombstones) == len(reached)
    print(f"{runtime}: {len(requests)} erasures filed in {filing:.2f} s, all done {done_after:.0f} s later")


def test_a_subject_stopped_just_before_its_erasure_gets_no_delivery_after_its_tombstone(
    kafka: Settings, unique: str, tmp_path: Path
) -> None:
    settings = with_index(
        kafka.model_copy(update={"topic_prefix": f"t{unique}", "erasure_grace_seconds": 10.0}), str(tmp_path)
    )
    topology = setup_topics(settings, partitions=1)
    subject, *others = _jcom_records(5, seed=42)
    key = f"jcom:{subject['customer_id']}".encode()
    target = topology.deliver("jcom-insurance")
    produce_lines(settings, "jcom", [to_line(r).encode() for r in (subject, *others)])
    with running_worker(settings, runtime="faust"), running_index(settings):
        audit_events(settings, topology, 5, timeout=120)
        # The subject's records keep coming all along: a worker that had not applied the stop
        # would deliver one after the tombstone.
        producing = threading.Event()

        def keep_producing() -> None:
            while not producing.is_set():
                produce_lines(settings, "jcom", [to_line(subject).encode()])
                time.sleep(0.2)

        producer = threading.Thread(target=keep_producing, daemon=True)
        producer.start()
        try:
            time.sleep(2)
            file_request(settings, RightsAction.STOP, subject["customer_id"], "jcom")
            file_request(settings, RightsAction.ERASE, subject["customer_id"], "jcom")
            deadline = time.monotonic() + settings.erasure_grace_seconds + 60
            tombstoned = False
            while not tombstoned and time.monotonic() < deadline:
                messages = read_committed(settings, target, expected=None, quiet=1.0)
                tombstoned = any(m.key() == key and m.value() is None for m in messages)
            assert tombstoned, "no tombstone for the erased subject"
            time.sleep(5)  # records of the subject still coming in after the tombstone
        finally:
            producing.set()
            producer.join(10)
    ours = [m for m in read_committed(settings, target, expected=None, quiet=1.5) if m.key() == key]
    values = ["tombstone" if m.value() is None else "delivery" for m in ours]
    assert values.count("tombstone") == 1 and values[-1] == "tombstone", values
    assert values.count("delivery") >= 1  # the subject was delivered before it asked
