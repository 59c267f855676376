"""Foreign egress on the real broker: consent only, the provider's records only, one provision
record per record sent, nothing protected abroad."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.devtools.synthetic import Mix
from streams.kafka.company_client import read_committed
from streams.settings import Settings
from streams.worker.foreign import run_foreign_egress
from tests.cli.helpers import run_cli
from tests.policies import REINSURER, policy_with_reinsurer
from tests.runtime.helpers import produce_records, setup_topics

pytestmark = pytest.mark.kafka


def test_only_consented_provider_records_go_abroad_each_with_a_provision_record(
    kafka: Settings, unique: str, tmp_path: Path
) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"f{unique}", "policy_path": policy_with_reinsurer(tmp_path)})
    topology = setup_topics(settings, partitions=2)
    records = produce_records(settings, 400, seed=31, mix=Mix(invalid=0.0, insurer=1.0, sensitive=1.0, secrecy=1.0))
    insurer = [r for r in records if r["source_company"] == "jcom-insurance"]
    consented = {r["customer_id"] for r in insurer if r["consent"]["foreign_transfer_consent"]}
    assert 0 < len(consented) < len(insurer)
    assert any(r["consent"]["foreign_transfer_consent"] for r in records if r["source_company"] == "jcom")

    stats, refused = run_foreign_egress(settings, recipient=REINSURER, worker_id="f0", max_idle_seconds=5)
    assert stats.records == len(insurer)  # jcom's records are never even read
    assert refused == {"no_consent": len(insurer) - len(consented)}

    sent = read_committed(settings, topology.foreign(REINSURER), expected=len(consented), timeout=60)
    provisions = read_committed(settings, topology.provision_records, expected=len(consented), timeout=60)
    assert {m.key().decode() for m in sent} == {f"jcom-insurance:{c}" for c in consented}
    assert len(sent) == len(provisions) == len(consented)
    for message in sent:
        assert b"SECRET" not in message.value()  # no secrecy, sensitive or diagnosis value abroad
    records_json = [json.loads(m.value()) for m in provisions]
    assert {p["subject_key"] for p in records_json} == {m.key().decode() for m in sent}
    assert {(p["recipient"], p["country"]) for p in records_json} == {(REINSURER, "US")}
    assert all(p["items"] and set(p["insurer_fields"]) == {"claims", "policy"} for p in records_json)

    # The decoded deliveries: what the consumer abroad sees.
    rows = [
        json.loads(line)
        for line in run_cli(
            ["consume", "--topic", topology.foreign(REINSURER), "--from-beginning", "--max", str(len(consented))],
            settings,
        ).stdout.splitlines()
    ]
    assert rows and all(
        set(r["record"])
        <= {"customer_id", "source_company", "name", "name_kana", "birth_date", "gender", "policy", "claims"}
        for r in rows
    )


def test_an_unknown_recipient_is_refused_before_anything_runs(kafka: Settings, unique: str, tmp_path: Path) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"f{unique}", "policy_path": policy_with_reinsurer(tmp_path)})
    result = run_cli(["foreign", "run", "--recipient", "nobody-abroad", "--max-idle", "1"], settings, check=False)
    assert result.returncode == 2 and "nobody-abroad" in result.stderr
