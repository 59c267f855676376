"""The statistics worker on the broker: a day of records through the real pipeline, its windows
closed by event time, every published cell equal to an offline recount, and a late record making a
revision."""

from __future__ import annotations

import datetime as dt
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.devtools.processes import start_stats, stop_worker
from streams.devtools.synthetic import Generator, Mix
from streams.kafka.company_client import produce_lines
from streams.kafka.lag import group_lag
from streams.policy.calendar import JST
from streams.policy.classification import load_schema
from streams.policy.loader import load_policies
from streams.settings import PROJECT_ROOT, Guarantee, Settings
from streams.stats.core.publication import Publication
from streams.stats.preview import preview
from streams.stats.published import wait_for_publication
from streams.topology import Topology
from streams.worker.confluent_main import ConfluentWorker
from tests.observability.test_prometheus_e2e import free_port
from tests.runtime.helpers import setup_topics

pytestmark = pytest.mark.kafka
DAY = dt.date(2026, 3, 1)  # the generator's records are timed from 2026-03-01 09:00 JST, one a second


def _lines(count: int, seed: int, *, at: dt.datetime | None = None, first: int = 0) -> dict[str, list[bytes]]:
    """Generated records, timed from ``at`` if given; ``first`` > 0 makes their customers new ones."""
    mix = Mix(invalid=0.0, joint_use_stop=0.0 if first else 0.05)
    return Generator(seed=seed, mix=mix, start=at, first_index=first).lines_by_source(count)


def _produce(settings: Settings, lines: dict[str, list[bytes]]) -> None:
    for company, raw in lines.items():
        produce_lines(settings, company, raw)


def _decide(settings: Settings) -> None:
    # The composed worker's pipeline alone, in this process (no telemetry server, no erasure).
    worker = ConfluentWorker(settings, worker_id="stats-0", guarantee=Guarantee.EXACTLY_ONCE, batch_size=200)
    worker.run_pipeline_only(max_idle_seconds=4)


def _published(settings: Settings, table: str, revision: int, timeout: float = 120) -> dict:
    found = wait_for_publication(settings, table, DAY, revision=revision, timeout=timeout)
    assert found is not None, (
        f"{table} revision {revision} of {DAY} was not published within {timeout:.0f} s; "
        f"the statistics worker: {_status(settings)}"
    )
    return found


def _status(settings: Settings) -> str:
    """What the statistics worker says it does and waits for (its /status), for a failure's message:
    recovering (and how much is left), counting (committed, first not yet counted, behind by), the
    event time and the next window it closes."""
    address = f"http://{settings.metrics_host}:{settings.stats_metrics_port}/status"
    try:
        with urllib.request.urlopen(address, timeout=5) as response:
            return response.read().decode().strip()
    except OSError as exc:
        return f"no answer at {address} ({exc})"


def _samples(host: str, port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The statistics worker's /metrics, by sample name and labels (sorted)."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _recount(settings: Settings, day: dict[str, list[bytes]]) -> dict[str, Publication]:
    """What each table publishes of ``DAY``, recounted offline by ``jointuse stats preview``'s rules."""
    policies = load_policies(settings.policy_path)
    schema = load_schema(PROJECT_ROOT / "schemas" / "customer_record.v1.avsc")
    everything = [line for company in sorted(day) for line in day[company]]
    found = preview(everything, policies, schema, day=DAY, now=dt.datetime.now(dt.UTC))
    return {name: publication for name, _, _, publication in found.publications}


def _settings(kafka: Settings, unique: str, data_dir: Path) -> Settings:
    return kafka.model_copy(
        update={
            "topic_prefix": f"s{unique}",
            "metrics_port": 0,
            "stats_grace_seconds": 0,
            "stats_metrics_port": free_port(),
            "data_dir": data_dir,
        }
    )


def test_a_day_of_records_is_published_as_an_offline_recount_says_and_a_late_one_revises(
    kafka: Settings, unique: str, tmp_path: Path
) -> None:
    settings = _settings(kafka, unique, tmp_path)
    setup_topics(settings, partitions=2)
    day = _lines(1_500, seed=11)
    _produce(settings, day)
    _decide(settings)
    # Then records of the next day move the event time past the end of 1 March: its windows close.
    # (Decided together, partitions in parallel, a next-day record could come first and close the
    # windows early; the rest of 1 March would then be revisions.)
    _produce(settings, _lines(20, seed=12, at=dt.datetime(2026, 3, 2, 10, tzinfo=JST), first=100_000))
    _decide(settings)
    output = tmp_path / "stats.log"
    stats = start_stats(settings, log=output)
    try:
        offline = _recount(settings, day)
        for table in ("services_daily", "subscribers_by_region"):
            published = _published(settings, table, 0)
            expected = offline[table]
            assert published["revision"] == 0 and published["total"] == expected.total
            assert {tuple(c["values"]): c["subjects"] for c in published["cells"]} == dict(expected.cells)
            assert all(c["subjects"] >= published["k"] for c in published["cells"])
            assert published["suppressed_below_k"] == expected.sensitive
        # A late record of 1 March: the daily window is revised, and counts one more subject.
        late = _lines(1, seed=13, at=dt.datetime(2026, 3, 1, 23, tzinfo=JST), first=200_000)
        _produce(settings, late)
        _decide(settings)
        revised = _published(settings, "services_daily", 1)
        assert revised["total"] == offline["services_daily"].total + 1
        assert {tuple(c["values"]) for c in revised["cells"]} <= set(offline["services_daily"].cells)
        # What an operator sees: every shared record counted once, nothing skipped, one first
        # publication per table and the revision.
        seen = _samples(settings.metrics_host, settings.stats_metrics_port)
        assert seen[("jointuse_stats_contributions_total", (("outcome", "skipped"),))] == 0
        assert seen[("jointuse_stats_contributions_total", (("outcome", "counted"),))] >= revised["total"]
        assert seen[("jointuse_stats_publications_total", (("kind", "first"), ("table", "services_daily")))] == 1
        assert seen[("jointuse_stats_publications_total", (("kind", "revision"), ("table", "services_daily")))] == 1
        assert seen[("jointuse_stats_open_windows", ())] >= 1  # the next day's windows
        next_day = dt.datetime(2026, 3, 2, 10, tzinfo=JST).timestamp()
        assert next_day <= seen[("jointuse_stats_watermark_seconds", ())] < next_day + 20
    finally:
        stop_worker(stats)
    printed = output.read_bytes()
    assert b"\x1b[" not in printed and "ƒaµS".encode() not in printed  # JSON lines, no banner or spinner


def test_a_statistics_worker_killed_while_counting_is_replaced_and_publishes_the_same(
    kafka: Settings, unique: str, tmp_path: Path
) -> None:
    """SIGKILL in the middle of a day's contributions (some counted, some perhaps committed); the
    replacement runs on another state directory, as on another host, so its tables come from the
    changelogs alone. It publishes what an offline recount says."""
    settings = _settings(kafka, unique, tmp_path / "first")
    setup_topics(settings, partitions=2)
    day = _lines(3_000, seed=21)
    _produce(settings, day)
    _decide(settings)
    topology = Topology(settings.topic_prefix)
    stats = start_stats(settings)
    try:
        deadline = time.monotonic() + 120
        counted = 0.0
        while counted < 1_000:  # a third of the day counted; whether committed yet, the kill decides
            assert time.monotonic() < deadline, f"counted {counted:.0f} in 120 s; the worker: {_status(settings)}"
            try:
                seen = _samples(settings.metrics_host, settings.stats_metrics_port)
            except OSError:  # not listening yet
                seen = {}
            counted = seen.get(("jointuse_stats_contributions_total", (("outcome", "counted"),)), 0.0)
            time.sleep(0.02)
        stats.kill()
        stats.wait(10)
        (lag,) = group_lag(settings, topology.stats_app, [topology.stats_contributions])
        assert lag.lag > 0, "the day was counted and committed before the kill: nothing tested"
        # The next day's records, which close 1 March, are there before the replacement starts: all
        # it reads at its start is what faust may drop then, and nothing comes after to show it.
        _produce(settings, _lines(20, seed=22, at=dt.datetime(2026, 3, 2, 10, tzinfo=JST), first=100_000))
        _decide(settings)
        replacement = _settings(kafka, unique, tmp_path / "second")
        stats = start_stats(replacement)
        offline = _recount(settings, day)
        for table in ("services_daily", "subscribers_by_region"):
            published = _published(replacement, table, 0)
            assert published["total"] == offline[table].total
            assert {tuple(c["values"]): c["subjects"] for c in published["cells"]} == dict(offline[table].cells)
        seen = _samples(replacement.metrics_host, replacement.stats_metrics_port)
        assert seen[("jointuse_stats_contributions_total", (("outcome", "skipped"),))] == 0
    finally:
        stop_worker(stats)
