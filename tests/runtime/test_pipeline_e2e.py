"""End to end on the real broker and registry: 10,000 mixed records from two companies."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from streams.devtools.synthetic import Mix
from streams.kafka.company_client import produce_lines
from streams.messages import (
    H_ORIGINAL_OFFSET,
    H_ORIGINAL_TOPIC,
    H_POLICY_VERSION,
    H_PURPOSES,
    H_REASON,
    H_SOURCE,
    H_TRACE_ID,
)
from streams.settings import Settings
from tests.runtime.helpers import audit_events, generated_lines, read_topic, running_worker, setup_topics

pytestmark = pytest.mark.kafka
PROTECTED_MARKERS = ("SECRET",)  # every protected value the generator writes carries it
COMPANIES = ("jcom", "jcom-insurance")


@pytest.mark.parametrize("runtime", ["faust", "confluent"])
def test_ten_thousand_mixed_records(kafka: Settings, unique: str, runtime: str) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"t{unique}"})
    topology = setup_topics(settings)
    lines = generated_lines(10_000, seed=99, mix=Mix(invalid=0.05))
    produced = {}
    for company in COMPANIES:
        stats = produce_lines(
            settings,
            company,
            lines[company],
        )
        produced[company] = stats.produced
        assert all("SECRET" not in r.reason for r in stats.rejected)
    total = sum(produced.values())
    assert 9_000 < total < 10_000  # the producer rejected the non-schema lines

    with running_worker(settings, runtime=runtime):
        events = audit_events(settings, topology, total, timeout=240)

    # Exactly one audit event per input offset; shared + withheld + invalid = input.
    offsets = Counter((e["input"]["topic"], e["input"]["partition"], e["input"]["offset"]) for e in events)
    assert len(offsets) == total and set(offsets.values()) == {1}
    statuses = Counter(e["status"] for e in events)
    assert statuses["shared"] + statuses["withheld"] + statuses["invalid"] == total
    assert statuses["shared"] > 0.8 * total and statuses["withheld"] > 0 and statuses["invalid"] > 0
    assert "SECRET" not in json.dumps(events)

    by_trace = {e["trace_id"]: e for e in events}
    for company in COMPANIES:
        deliveries = read_topic(settings, topology.deliver(company), expected=None)
        expected = sum(1 for e in events if company in e["recipients"])
        assert len(deliveries) == expected
        for message in deliveries:
            value = message.value()
            assert not any(marker.encode() in value for marker in PROTECTED_MARKERS)
            headers = dict(message.headers())
            source = headers[H_SOURCE].decode()
            assert source != company  # nobody receives its own records back
            assert message.key().decode().startswith(f"{source}:")
            event = by_trace[headers[H_TRACE_ID].decode()]
            assert headers[H_PURPOSES].decode().split(",") == event["recipients"][company]["purposes"]
            assert headers[H_POLICY_VERSION] == b"2026-01"

        dead = read_topic(settings, topology.dead_letters(company), expected=None)
        invalid_here = [e for e in events if e["status"] == "invalid" and e["source"] == company]
        assert len(dead) == len(invalid_here)
        for message in dead:
            headers = dict(message.headers())
            assert headers[H_REASON] == b"source_mismatch"
            assert headers[H_ORIGINAL_TOPIC].decode() == topology.ingest(company)
            assert int(headers[H_ORIGINAL_OFFSET]) >= 0
