"""Kafka's own authentication and ACLs keep each company to its own topics (real broker, SASL/SCRAM)."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from pydantic import SecretStr

from streams.devtools.processes import start_worker, stop_worker
from streams.errors import ClusterError, SubjectIndexUnavailable
from streams.incidents.store import Opened, open_incident
from streams.kafka.acl_plan import (
    AUDITOR_PRINCIPAL,
    PIPELINE_PRINCIPAL,
    company_group_prefix,
    company_transactional_prefix,
    diff_access,
    plan_access,
)
from streams.kafka.acls import apply_acls, current_acls, upsert_scram
from streams.kafka.company_client import produce_lines
from streams.policy.loader import PolicySet, parse_policy
from streams.rights.index_client import SubjectIndex
from streams.rights.requests import file_correction
from streams.settings import Settings
from streams.topology import Topology
from tests.conftest import POLICY_PATH
from tests.policies import policy_text_without_the_insurer
from tests.runtime.helpers import (
    customers_of,
    generated_lines,
    read_topic,
    running_index,
    setup_topics,
    with_index,
)
from tests.runtime.test_trust_boundary import _records, produce_in_transactions

pytestmark = pytest.mark.kafka


def as_principal(settings: Settings, name: str, password: str) -> Settings:
    return settings.model_copy(
        update={"sasl_username": name, "sasl_password": SecretStr(password), "sasl_password_file": None}
    )


def consume_error(settings: Settings, topic: str, group: str, timeout: float = 15) -> str | None:
    """The error a consumer gets on ``topic`` in ``group``, or None if it reads without one."""
    client_errors: list[str] = []  # authentication failures arrive here, not through poll()
    consumer = Consumer(
        {
            **settings.kafka_common(),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "error_cb": lambda err: client_errors.append(err.name()),
            "log_level": 0,
        }
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if client_errors:
                return client_errors[0]
            if message is None:
                continue
            if message.error():
                return str(message.error().name())
            return None
        return None
    except KafkaException as exc:
        return str(exc.args[0].name())
    finally:
        consumer.close()


def produce_error(settings: Settings, topic: str) -> str | None:
    errors: list[str] = []
    producer = Producer({**settings.kafka_common(), "enable.idempotence": False, "message.timeout.ms": 10_000})
    producer.produce(
        topic, key=b"k", value=b"v", on_delivery=lambda err, _msg: errors.append(err.name()) if err else None
    )
    producer.flush(15)
    return errors[0] if errors else None


def apply(settings: Settings, policy_text: str, topology: Topology, passwords: dict[str, str]) -> None:
    plan = plan_access(parse_policy(policy_text), topology)
    upsert_scram(settings.kafka_common(), passwords)
    diff = diff_access(plan, current_acls(settings.kafka_common()), topology)
    apply_acls(settings.kafka_common(), diff.to_add, diff.to_remove)


@pytest.fixture
def secured(kafka: Settings, unique: str) -> tuple[Settings, Topology, dict[str, str]]:
    if kafka.security_protocol == "PLAINTEXT":
        pytest.fail("the local broker must run with SASL (make test sets it up)")
    settings = kafka.model_copy(update={"topic_prefix": f"s{unique}"})
    topology = setup_topics(settings, partitions=2)
    principals = ["jcom", "jcom-insurance", PIPELINE_PRINCIPAL, AUDITOR_PRINCIPAL]
    passwords = {p: secrets.token_urlsafe(16) for p in principals}
    apply(settings, POLICY_PATH.read_text(encoding="utf-8"), topology, passwords)
    return settings, topology, passwords


def test_a_company_reaches_only_what_it_may(secured: tuple[Settings, Topology, dict[str, str]]) -> None:
    settings, topology, passwords = secured
    jcom = as_principal(settings, "jcom", passwords["jcom"])
    own_group = company_group_prefix(topology, "jcom") + "reader"
    for topic in (
        topology.deliver("jcom-insurance"),
        topology.ingest("jcom-insurance"),
        topology.ingest("jcom"),
        topology.dead_letters("jcom-insurance"),
        topology.audit,
    ):
        assert consume_error(jcom, topic, own_group) == "TOPIC_AUTHORIZATION_FAILED", topic
    for topic in (
        topology.deliver("jcom"),
        topology.deliver("jcom-insurance"),
        topology.dead_letters("jcom"),
        topology.audit,
        topology.ingest("jcom-insurance"),
    ):
        assert produce_error(jcom, topic) == "TOPIC_AUTHORIZATION_FAILED", topic
    other_group = company_group_prefix(topology, "jcom-insurance") + "reader"
    assert consume_error(jcom, topology.deliver("jcom"), other_group) == "GROUP_AUTHORIZATION_FAILED"
    # What it may do: write its ingest topic, read its deliveries in its own groups.
    assert produce_error(jcom, topology.ingest("jcom")) is None
    assert consume_error(jcom, topology.deliver("jcom"), own_group, timeout=5) is None


def test_a_wrong_password_is_rejected(secured: tuple[Settings, Topology, dict[str, str]]) -> None:
    settings, topology, _ = secured
    impostor = as_principal(settings, "jcom", "not-the-password")
    error = consume_error(impostor, topology.deliver("jcom"), company_group_prefix(topology, "jcom") + "x")
    assert error == "_AUTHENTICATION", error


def test_removed_company_loses_access(secured: tuple[Settings, Topology, dict[str, str]]) -> None:
    settings, topology, passwords = secured
    insurer = as_principal(settings, "jcom-insurance", passwords["jcom-insurance"])
    group = company_group_prefix(topology, "jcom-insurance") + "reader"
    assert consume_error(insurer, topology.deliver("jcom-insurance"), group, timeout=5) is None
    without = policy_text_without_the_insurer()
    apply(settings, without, topology, {})
    denied = ("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED")  # whichever the broker checks first
    assert consume_error(insurer, topology.deliver("jcom-insurance"), group) in denied
    assert produce_error(insurer, topology.ingest("jcom-insurance")) == "TOPIC_AUTHORIZATION_FAILED"


def test_pipeline_works_end_to_end_under_acls(
    secured: tuple[Settings, Topology, dict[str, str]], policies: PolicySet, tmp_path: Path
) -> None:
    settings, topology, passwords = secured
    pipeline_password = tmp_path / "pipeline.password"
    pipeline_password.write_text(passwords[PIPELINE_PRINCIPAL], encoding="utf-8")
    pipeline = settings.model_copy(
        update={"sasl_username": PIPELINE_PRINCIPAL, "sasl_password": None, "sasl_password_file": pipeline_password}
    )
    jcom = as_principal(settings, "jcom", passwords["jcom"])
    lines = generated_lines(300, seed=8)["jcom"]
    produced = produce_lines(jcom, "jcom", lines).produced
    worker = start_worker(pipeline, "acl-0")
    try:
        auditor = as_principal(settings, AUDITOR_PRINCIPAL, passwords[AUDITOR_PRINCIPAL])
        audit = read_topic(
            auditor, topology.audit, expected=produced, timeout=120, group=f"{settings.topic_prefix}.auditor.check"
        )
        events = [json.loads(m.value()) for m in audit]
        assert len(events) == produced
    finally:
        stop_worker(worker)
    insurer = as_principal(settings, "jcom-insurance", passwords["jcom-insurance"])
    shared = sum(1 for e in events if "jcom-insurance" in e["recipients"])
    deliveries = read_topic(
        insurer,
        topology.deliver("jcom-insurance"),
        expected=shared,
        timeout=60,
        group=company_group_prefix(topology, "jcom-insurance") + "check",
    )
    assert len(deliveries) == shared > 0

    # The subject index runs as the pipeline too, and the privacy desk files a correction it reads.
    keys = settings.subject_keys()
    reached = {e["subject"] for e in events if e["recipients"]}
    customer = next(c for c in customers_of(lines) if keys.subject("jcom", c) in reached)
    file_correction(auditor, customer, "jcom")
    indexed = with_index(pipeline, str(tmp_path))
    index = SubjectIndex.of(indexed)
    with running_index(indexed):
        deadline = time.monotonic() + 90
        row = None
        while (row is None or not row.corrections) and time.monotonic() < deadline:
            try:
                row = index.lookup(keys.subject("jcom", customer), wait_seconds=5).row
            except SubjectIndexUnavailable:
                time.sleep(1)
    assert row is not None and row.recipients and len(row.corrections) == 1

    # The privacy desk opens an incident under its own principal: it reads the audit and writes the
    # incident with its notices in one transaction. It cannot read a raw record (an ingest topic), so
    # it opens without the customers' keys; asked for them, it is refused.
    def open_as_desk(resolve_keys: bool) -> Opened | None:
        return open_incident(
            auditor,
            by=AUDITOR_PRINCIPAL,
            reason="a check under ACLs",
            recipient="jcom-insurance",
            from_time=None,
            to_time=None,
            subjects=None,
            financial_harm=False,
            wrongful_purpose=False,
            resolve_keys=resolve_keys,
        )

    with pytest.raises(ClusterError):
        open_as_desk(resolve_keys=True)
    opened = open_as_desk(resolve_keys=False)
    subjects = {e["subject"] for e in events if "jcom-insurance" in e["recipients"]}
    assert opened is not None and opened.notices == opened.without_key == len(subjects)
    told = read_topic(
        jcom,
        topology.notices("jcom"),
        expected=opened.notices,
        timeout=60,
        group=company_group_prefix(topology, "jcom") + "notices",
    )
    assert {json.loads(m.value())["subject"] for m in told} == subjects


@pytest.mark.parametrize("runtime", ["faust", "confluent"])
def test_a_company_s_exactly_once_loader_under_its_own_acls(
    secured: tuple[Settings, Topology, dict[str, str]], tmp_path: Path, runtime: str
) -> None:
    """Kafka Connect with exactly-once source support, Flink's Kafka sink, a Kafka Streams app: the
    company produces in transactions under its own principal, with transactional ids of its own
    namespace; it commits 5 records and aborts 5, and exactly the 5 committed are delivered."""
    settings, topology, passwords = secured
    jcom = as_principal(settings, "jcom", passwords["jcom"])
    committed, aborted = _records(5, seed=51), _records(10, seed=52)[5:]
    produce_in_transactions(
        jcom,
        topology.ingest("jcom"),
        [(committed, True), (aborted, False)],
        transactional_id=f"{company_transactional_prefix(topology, 'jcom')}connect-0",
    )
    with pytest.raises(KafkaException):  # nobody else's namespace: not the pipeline's
        produce_in_transactions(jcom, topology.ingest("jcom"), [], transactional_id=f"{topology.prefix}.pipeline.x")
    pipeline_password = tmp_path / "pipeline.password"
    pipeline_password.write_text(passwords[PIPELINE_PRINCIPAL], encoding="utf-8")
    pipeline = settings.model_copy(
        update={"sasl_username": PIPELINE_PRINCIPAL, "sasl_password": None, "sasl_password_file": pipeline_password}
    )
    worker = start_worker(pipeline, "acl-txn-0", runtime=runtime)
    try:
        insurer = as_principal(settings, "jcom-insurance", passwords["jcom-insurance"])
        deliveries = read_topic(
            insurer,
            topology.deliver("jcom-insurance"),
            expected=len(committed),
            timeout=120,
            group=company_group_prefix(topology, "jcom-insurance") + "txn",
        )
    finally:
        stop_worker(worker)
    assert sorted(m.key() for m in deliveries) == sorted(f"jcom:{r['customer_id']}".encode() for r in committed)


def test_a_channel_of_the_insurers_notice_reads_only_its_own_deliveries(
    kafka: Settings, unique: str, tmp_path: Path
) -> None:
    """Under the plan's ACLs on the real broker: an entrustee reads its own provide topic and
    nothing else a channel or a joint user is given; the privacy desk reads the supervision log."""
    from tests.policies import policy_with_channels
    from tests.policy.test_handling import INVESTIGATOR
    from tests.policy.test_provide import REINSURER

    path = policy_with_channels(tmp_path, INVESTIGATOR, REINSURER)
    settings = kafka.model_copy(update={"topic_prefix": f"s{unique}", "policy_path": path})
    topology = setup_topics(settings, partitions=2)
    principals = ["claims-investigator", "domestic-re", "jcom", AUDITOR_PRINCIPAL]
    passwords = {p: secrets.token_urlsafe(16) for p in principals}
    apply(settings, path.read_text(encoding="utf-8"), topology, passwords)
    admin = Producer(settings.kafka_common())
    for topic in (topology.provide("claims-investigator"), topology.provide("domestic-re"), topology.supervision):
        admin.produce(topic, key=b"k", value=b"{}")
    admin.flush(15)
    investigator = as_principal(settings, "claims-investigator", passwords["claims-investigator"])
    group = company_group_prefix(topology, "claims-investigator") + "intake"
    assert consume_error(investigator, topology.provide("claims-investigator"), group) is None
    denied = ("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED")
    for topic in (topology.provide("domestic-re"), topology.supervision, topology.deliver("jcom")):
        assert consume_error(investigator, topic, group) in denied, topic
    assert produce_error(investigator, topology.provide("claims-investigator")) == "TOPIC_AUTHORIZATION_FAILED"
    desk = as_principal(settings, AUDITOR_PRINCIPAL, passwords[AUDITOR_PRINCIPAL])
    assert consume_error(desk, topology.supervision, f"{topology.prefix}.auditor.supervision") is None
