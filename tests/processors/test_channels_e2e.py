"""Channels of the insurer's notice on the real broker (#30): a claim file to the entrusted
investigator with a supervision entry, contract items to a domestic reinsurer with a provision
record, the association's fixed items, a reinsurer abroad with the subject's own consent; nothing of
another company's customers, nothing beyond."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import orjson
import pytest

from streams.devtools.synthetic import Mix
from streams.kafka.company_client import read_committed
from streams.messages import H_BASIS, H_FIELDS
from streams.serde.avro_codec import AvroCodec
from streams.serde.registry import Registry
from streams.serde.wire import unframe
from streams.settings import Guarantee, Settings
from streams.worker.confluent_main import ConfluentWorker
from tests.cli.helpers import run_cli
from tests.policies import REINSURER as REINSURER_ABROAD
from tests.policies import policy_with_channels, policy_with_reinsurer
from tests.policy.test_handling import INVESTIGATOR
from tests.policy.test_provide import ASSOCIATION, CLAIM_FILE, EXCHANGED, IDENTIFIERS, LAWYER, REINSURED, REINSURER
from tests.runtime.helpers import audit_events, produce_records, setup_topics

pytestmark = pytest.mark.kafka


def test_each_standing_channel_receives_its_own_and_leaves_its_records(
    kafka: Settings, unique: str, tmp_path: Path
) -> None:
    path = policy_with_channels(tmp_path, INVESTIGATOR, REINSURER, ASSOCIATION, LAWYER)
    settings = kafka.model_copy(update={"topic_prefix": f"c{unique}", "policy_path": path})
    topology = setup_topics(settings, partitions=2)
    records = produce_records(settings, 300, seed=41, mix=Mix(invalid=0.0, insurer=0.7, sensitive=1.0, secrecy=1.0))
    insured = [r for r in records if r["source_company"] == "jcom-insurance"]
    with_contract = [r for r in insured if r.get("policy")]
    assert 0 < len(with_contract) < len(insured)

    ConfluentWorker(settings, worker_id="c0", guarantee=Guarantee.EXACTLY_ONCE, batch_size=100).run_pipeline_only(
        max_idle_seconds=5
    )
    events = audit_events(settings, topology, len(records))
    provided = Counter(channel for e in events for channel in e.get("provisions", {}))
    # The entrustee needs no consent: every insured customer; the others: those with a contract.
    assert provided == {
        "claims-investigator": len(insured),
        "domestic-re": len(with_contract),
        "ssi-association": len(with_contract),
    }
    assert all(e["source"] == "jcom-insurance" for e in events if e.get("provisions"))

    # Whatever the channels are given, a joint user gets no sensitive, insurer-only or secrecy value.
    for company in ("jcom", "jcom-insurance"):
        assert not [m for m in read_committed(settings, topology.deliver(company)) if b"SECRET" in (m.value() or b"")]
    registry = Registry(settings.registry_conf())

    def received(channel: str, expected: int) -> list[tuple[dict[str, str], dict[str, object]]]:
        out = []
        for message in read_committed(settings, topology.provide(channel), expected=expected, timeout=60):
            schema_id, body = unframe(message.value())
            record = AvroCodec(registry.schema(schema_id)).decode(body)
            headers = {k: (v or b"").decode() for k, v in message.headers() or []}
            out.append((headers, {k: v for k, v in record.items() if v is not None}))
        return out

    for headers, record in received("claims-investigator", len(insured)):
        assert headers[H_BASIS] == "entrustment"
        assert set(record) - IDENTIFIERS <= CLAIM_FILE
        if "medical_history" in record:
            assert "medical_history" in headers[H_FIELDS].split(",")
        # Secret values only where a claim file needs them: the medical history and the diagnosis.
        assert "SECRET" not in repr({k: v for k, v in record.items() if k not in ("medical_history", "claims")})
    for _, record in received("domestic-re", len(with_contract)):
        assert set(record) - IDENTIFIERS <= REINSURED
        assert "policy" in record and "SECRET" not in repr(record)
    for _, record in received("ssi-association", len(with_contract)):
        assert set(record) - IDENTIFIERS <= EXCHANGED and "SECRET" not in repr(record)
    records_out = [
        orjson.loads(m.value())
        for m in read_committed(settings, topology.provision_records, expected=2 * len(with_contract), timeout=60)
    ]
    assert Counter(r["recipient"] for r in records_out) == {
        "domestic-re": len(with_contract),
        "ssi-association": len(with_contract),
    }
    assert all(r["consent"] and r["basis"] in ("reinsurance", "industry_exchange") for r in records_out)
    supervised = [
        orjson.loads(m.value())
        for m in read_committed(settings, topology.supervision, expected=len(insured), timeout=60)
    ]
    assert len(supervised) == len(insured)
    assert {(s["recipient"], s["contract"]) for s in supervised} == {("claims-investigator", "ENT-2026-004")}
    shown = json.loads(
        run_cli(["supervision", "--channel", "claims-investigator", "--format", "json"], settings).stdout
    )
    assert sorted(e["subject_key"] for e in shown) == sorted(f"jcom-insurance:{r['customer_id']}" for r in insured)
    not_an_entrustee = run_cli(["supervision", "--channel", "domestic-re"], settings, check=False)
    assert not_an_entrustee.returncode == 2 and "not an entrustee" in not_an_entrustee.stderr
    assert "SECRET" not in json.dumps(records_out + supervised)

    # A lawyer's request, answered by the privacy desk for one subject, once.
    subject = next(r for r in with_contract if not r["consent"]["joint_use_stop"])
    key = f"jcom-insurance:{subject['customer_id']}"
    answer_file = tmp_path / "answer.json"
    ask = ["provide", "--channel", "counsel", "--basis", "professional", "--subject", key]
    done = run_cli([*ask, "--request", "BAR-2026-0042", "--out", str(answer_file)], settings)
    answer = json.loads(answer_file.read_text(encoding="utf-8"))
    assert answer["request"] == "BAR-2026-0042" and answer["record"]["customer_id"] == subject["customer_id"]
    assert set(answer["record"]) - IDENTIFIERS <= {"name", "name_kana", "address", "postal_code", "policy", "claims"}
    assert "SECRET" not in json.dumps({k: v for k, v in answer["record"].items() if k != "claims"})
    assert "recorded" in done.stderr
    lawyer_records = [
        orjson.loads(m.value())
        for m in read_committed(settings, topology.provision_records, expected=2 * len(with_contract) + 1, timeout=60)
        if b'"counsel"' in m.value()
    ]
    assert [(r["recipient"], r["request"], r["subject_key"]) for r in lawyer_records] == [
        ("counsel", "BAR-2026-0042", key)
    ]
    (event,) = [e for e in audit_events(settings, topology, len(records) + 1) if e.get("request")]
    assert event["request"] == "BAR-2026-0042" and set(event["provisions"]) == {"counsel"}
    # Asked again under the same reference: refused (1); without a reference: refused by its option (2).
    again = run_cli([*ask, "--request", "BAR-2026-0042"], settings, check=False)
    assert again.returncode == 1 and "answered once" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    bare = run_cli(ask, settings, check=False)
    assert bare.returncode == 2 and "--request" in bare.stderr and len(bare.stderr.strip().splitlines()) == 1
    # The chain of the desk's writer verifies with the pipeline's.
    run_cli(["audit", "verify"], settings)


def test_a_reinsurer_abroad_receives_consented_contracts_only_each_with_a_provision_record_naming_its_country(
    kafka: Settings, unique: str, tmp_path: Path
) -> None:
    """Section 6 as one more channel: the subject's own consent to provision abroad, the provider's
    customers only, no sensitive value, a provision record per record sent, in the input's transaction."""
    settings = kafka.model_copy(update={"topic_prefix": f"a{unique}", "policy_path": policy_with_reinsurer(tmp_path)})
    topology = setup_topics(settings, partitions=2)
    records = produce_records(settings, 400, seed=31, mix=Mix(invalid=0.0, insurer=1.0, sensitive=1.0, secrecy=1.0))
    insured = [r for r in records if r["source_company"] == "jcom-insurance"]
    consented = {r["customer_id"] for r in insured if r.get("policy") and r["consent"]["foreign_transfer_consent"]}
    assert 0 < len(consented) < len(insured)
    assert any(r["consent"]["foreign_transfer_consent"] for r in records if r["source_company"] == "jcom")

    ConfluentWorker(settings, worker_id="a0", guarantee=Guarantee.EXACTLY_ONCE, batch_size=100).run_pipeline_only(
        max_idle_seconds=5
    )
    events = audit_events(settings, topology, len(records))
    assert Counter(c for e in events for c in e.get("provisions", {})) == {REINSURER_ABROAD: len(consented)}
    sent = read_committed(settings, topology.provide(REINSURER_ABROAD), expected=len(consented), timeout=60)
    provisions = read_committed(settings, topology.provision_records, expected=len(consented), timeout=60)
    assert {m.key().decode() for m in sent} == {f"jcom-insurance:{c}" for c in consented}  # jcom's: never
    assert len(sent) == len(provisions) == len(consented)
    for message in sent:
        assert b"SECRET" not in message.value()  # no secrecy, sensitive or diagnosis value abroad
        assert dict(message.headers())[H_BASIS] == b"foreign"
    records_json = [orjson.loads(m.value()) for m in provisions]
    assert {p["subject_key"] for p in records_json} == {m.key().decode() for m in sent}
    assert {(p["recipient"], p["country"], p["basis"], p["article_29"]) for p in records_json} == {
        (REINSURER_ABROAD, "US", "foreign", True)
    }
    consume = ["consume", "--topic", topology.provide(REINSURER_ABROAD), "--from-beginning", "--max"]
    rows = [json.loads(line) for line in run_cli([*consume, str(len(consented))], settings).stdout.splitlines()]
    assert len(rows) == len(consented) and all(
        set(r["record"]) - IDENTIFIERS <= {"name", "name_kana", "birth_date", "gender", "policy", "claims"}
        for r in rows
    )
