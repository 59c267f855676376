"""`jointuse topics describe` and `jointuse lag` against the real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from confluent_kafka import Consumer

from streams.kafka.company_client import produce_lines
from streams.settings import Settings
from tests.runtime.helpers import generated_lines, setup_topics

pytestmark = pytest.mark.kafka


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **settings.worker_env()},
        timeout=120,
        check=False,
    )


def test_describe_and_lag(kafka: Settings, unique: str) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"d{unique}"})
    topology = setup_topics(settings, partitions=2)
    produced = produce_lines(
        settings,
        "jcom",
        generated_lines(200, seed=3)["jcom"],
    ).produced
    described = cli(settings, "topics", "describe", "--json")
    assert described.returncode == 0, described.stderr
    rows = json.loads(described.stdout)
    ingest = [r for r in rows if r["topic"] == topology.ingest("jcom")]
    assert len(ingest) == 2 and sum(r["records"] for r in ingest) == produced
    assert {r["topic"] for r in rows} >= {topology.audit, topology.deliver("jcom-insurance")}

    group = f"{settings.topic_prefix}.jcom.lagcheck"
    consumer = Consumer(
        {**settings.kafka_common(), "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    consumer.subscribe([topology.ingest("jcom")])
    read = 0
    while read < 30:
        message = consumer.poll(10)
        assert message is not None and message.error() is None
        read += 1
    consumer.commit(asynchronous=False)
    consumer.close()
    lag = cli(settings, "lag", "--group", group, "--json")
    assert lag.returncode == 0, lag.stderr
    assert sum(r["lag"] for r in json.loads(lag.stdout)) == produced - read
