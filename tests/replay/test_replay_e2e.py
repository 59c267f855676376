"""Replays on the real broker: a policy change, idempotence, resumption after a kill, dry runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.kafka.company_client import read_committed
from streams.messages import H_ITEMS, H_POLICY_VERSION, H_PURPOSES, H_TRACE_ID
from streams.policy.classification import load_schema
from streams.serde.json_form import JsonForm
from streams.serde.registry import Registry
from streams.serde.wire import unframe
from streams.settings import Settings
from streams.topology import Topology
from tests.cli.helpers import run_cli
from tests.conftest import POLICY_PATH, SCHEMA_PATH
from tests.runtime.helpers import audit_events, produce_generated, running_worker, setup_topics

pytestmark = pytest.mark.kafka
NARROWER = "2026-07"


def narrower_policy(folder: Path) -> Path:
    """The notice as published, plus a later version: email serves only publications, and
    jcom-insurance declares four purposes, so it no longer receives email."""
    folder.mkdir(parents=True, exist_ok=True)
    text = POLICY_PATH.read_text(encoding="utf-8")
    (folder / "2026-01.yaml").write_text(text, encoding="utf-8")
    text = text.replace('version: "2026-01"', f'version: "{NARROWER}"')
    text = text.replace("published_at: 2026-01-01", "published_at: 2026-06-01")
    text = text.replace("effective_from: 2026-01-01T00:00:00+09:00", "effective_from: 2026-07-01T00:00:00+09:00")
    text = text.replace(
        "item_purposes:\n  default: all",
        "item_purposes:\n  default: all\n  items:\n    email: [jointuse.publications]",
    )
    old = "  - {id: jcom-insurance, "
    assert old in text
    declared = "[jointuse.membership, jointuse.billing, jointuse.support, jointuse.terms]"
    text = text.replace(old, f"  - {{purposes: {declared}, id: jcom-insurance, ")
    (folder / f"{NARROWER}.yaml").write_text(text, encoding="utf-8")
    return folder


def _end_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    consumer = Consumer({**settings.kafka_common(), "group.id": "offsets-probe"})
    try:
        metadata = consumer.list_topics(timeout=15)
        out = {}
        for name, topic in metadata.topics.items():
            if name.startswith(settings.topic_prefix + "."):
                for partition in topic.partitions:
                    out[(name, partition)] = consumer.get_watermark_offsets(TopicPartition(name, partition), 15)[1]
        return out
    finally:
        consumer.close()


def test_replay_after_a_policy_change_delivers_the_new_projection_once(
    kafka: Settings, unique: str, tmp_path: Path
) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"p{unique}"})
    topology = setup_topics(settings, partitions=2)
    produced = produce_generated(settings, 300, seed=41)
    with running_worker(settings, runtime="confluent"):
        events = audit_events(settings, topology, sum(produced.values()), timeout=90)
    ingest = topology.ingest("jcom")
    target = topology.deliver("jcom-insurance")
    shared = [e for e in events if e["input"]["topic"] == ingest and "jcom-insurance" in e["recipients"]]
    assert shared and all("email" in e["recipients"]["jcom-insurance"]["items"] for e in shared)
    policies = narrower_policy(tmp_path / "policies")
    before = _end_offsets(settings)

    # The dry run names the differences and writes nothing.
    args = ["replay", "--topic", ingest, "--policy", str(policies), "--policy-version", NARROWER]
    result = run_cli([*args, "--dry-run", "--json"], settings, check=False)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["compared"] == sum(1 for e in events if e["input"]["topic"] == ingest)
    assert report["without_audit"] == 0
    rows = {(r["kind"], r["recipient"], r["what"], r["direction"]): r for r in report["differences"]}
    email = rows[("item", "jcom-insurance", "email", "removed")]
    assert email["records"] == len(shared) and len(email["sample_keys"]) == 3
    assert rows[("purpose", "jcom-insurance", "jointuse.marketing_research", "removed")]["records"] == len(
        [e for e in shared if "jointuse.marketing_research" in e["recipients"]["jcom-insurance"]["purposes"]]
    )
    assert not any(kind == "status" for kind, *_ in rows)
    assert _end_offsets(settings) == before

    # The replay delivers the new projection, and running it again writes nothing more.
    first = json.loads(run_cli([*args, "--redeliver"], settings).stdout)
    assert first["policy_version"] == NARROWER and first["read"] == report["compared"] and not first["resumed"]
    again = json.loads(run_cli([*args, "--redeliver"], settings).stdout)
    assert again["replay_id"] == first["replay_id"] and again["read"] == 0 and again["written"] == 0

    deliveries = read_committed(settings, target, expected=None, quiet=2.0)
    replayed = [m for m in deliveries if dict(m.headers())[H_POLICY_VERSION] == NARROWER.encode()]
    assert len(replayed) == len(shared)
    form = JsonForm(load_schema(SCHEMA_PATH))
    registry = Registry(settings.registry_conf())
    for message in replayed:
        headers = dict(message.headers())
        assert dict(headers)["jointuse-replay-id"] == first["replay_id"].encode()
        assert "email" not in headers[H_ITEMS].decode().split(",")
        assert set(headers[H_PURPOSES].decode().split(",")) <= {
            "jointuse.membership",
            "jointuse.billing",
            "jointuse.support",
            "jointuse.terms",
        }
        schema_id, body = unframe(message.value())
        record = form.to_json(registry.codec(schema_id).decode(body))
        assert record.get("email") is None and record["name"]
    replay_audit = [
        json.loads(m.value())
        for m in read_committed(settings, topology.audit, expected=None, quiet=2.0)
        if b'"replay_id"' in m.value()
    ]
    assert len(replay_audit) == report["compared"]
    assert {e["policy_version"] for e in replay_audit if e["status"] != "invalid"} == {NARROWER}


def _start_replay(settings: Settings, args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli.main", "replay", *args],
        env={**os.environ, **settings.worker_env()},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("target", ["topic", "file"])
def test_interrupted_replay_resumes_without_duplicates(
    kafka: Settings, unique: str, tmp_path: Path, target: str
) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"q{unique}"})
    topology = setup_topics(settings, partitions=2)
    produced = produce_generated(settings, 6000, seed=42)
    ingest = topology.ingest("jcom")
    staging = f"{settings.topic_prefix}.staging"
    out_file = tmp_path / "replay.jsonl"
    args = ["--topic", ingest, "--batch-size", "20"]
    args += ["--to-topic", staging] if target == "topic" else ["--to-file", str(out_file)]

    replay = _start_replay(settings, args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and replay.poll() is None:
        progressed = (
            sum(o for (t, _), o in _end_offsets(settings).items() if t == staging) > 200
            if target == "topic"
            else out_file.exists() and out_file.stat().st_size > 100_000
        )
        if progressed:
            replay.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    assert replay.wait(30) == -signal.SIGKILL, "the replay finished before it could be interrupted"

    finished = subprocess.run(
        [sys.executable, "-m", "streams.cli.main", "replay", *args],
        env={**os.environ, **settings.worker_env()},
        capture_output=True,
        check=True,
        timeout=300,
    )
    summary = json.loads(finished.stdout)
    assert summary["resumed"] and 0 < summary["read"] < produced["jcom"]

    if target == "topic":
        messages = read_committed(settings, staging, expected=None, quiet=2.0)
        traces = [dict(m.headers())[H_TRACE_ID] for m in messages]
        assert len(traces) == len(set(traces)), "a delivery was written twice"
        shared = sum(1 for m in messages)
        # Every shared jcom record reaches jcom-insurance only: one staging message per shared record.
        expected = _shared_count(settings, topology, ingest, tmp_path)
        assert shared == expected
    else:
        rows = [json.loads(line) for line in out_file.read_text(encoding="utf-8").splitlines()]
        positions = [(r["partition"], r["offset"]) for r in rows]
        assert len(positions) == len(set(positions)) == produced["jcom"], "a record was lost or written twice"


def _shared_count(settings: Settings, topology: Topology, ingest: str, tmp_path: Path) -> int:
    out = tmp_path / "all.jsonl"
    run_cli(["replay", "--topic", ingest, "--to-file", str(out)], settings)
    return sum(1 for line in out.read_text(encoding="utf-8").splitlines() if json.loads(line)["status"] == "shared")


def test_offset_and_key_ranges(kafka: Settings, unique: str, tmp_path: Path) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"o{unique}"})
    topology = setup_topics(settings, partitions=1)
    produce_generated(settings, 100, seed=43)
    ingest = topology.ingest("jcom")
    out = tmp_path / "range.jsonl"
    run_cli(["replay", "--topic", ingest, "--from-offset", "10", "--to-offset", "19", "--to-file", str(out)], settings)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["offset"] for r in rows] == list(range(10, 20))
    key = rows[3]["key"]
    keyed = tmp_path / "key.jsonl"
    run_cli(["replay", "--topic", ingest, "--key", key, "--to-file", str(keyed)], settings)
    assert [json.loads(line)["key"] for line in keyed.read_text(encoding="utf-8").splitlines()] == [key]
    bad = run_cli(["replay", "--topic", ingest, "--to-file", str(out)], settings, check=False)
    assert bad.returncode == 2 and "checkpoint" in bad.stderr  # another replay's file is never overwritten
