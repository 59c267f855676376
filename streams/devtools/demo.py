"""``jointuse demo``: the whole flow on a broker, then a summary table."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Message
from rich.console import Console
from rich.table import Table

from streams.audit.core.event import AuditEvent
from streams.devtools.processes import start_stats, start_worker, stop_worker
from streams.devtools.synthetic import Generator
from streams.kafka.admin import create_topics
from streams.kafka.company_client import ensure_reachable, produce_lines, read_committed
from streams.policy.bases import BASES
from streams.policy.loader import load_policies
from streams.policy.model import Channel, Policy
from streams.rights.core.rules import Requester, RightsAction
from streams.rights.core.subject_index import exposures_of
from streams.rights.requests import file_request
from streams.settings import PROJECT_ROOT, Settings
from streams.topology import Topology

COMPANIES = ("jcom", "jcom-insurance")
STATE_FILE = "kept.json"
STATS_TABLE = "subscribers_by_region"  # the table the demo prints: weekly, with suppressed cells
STATS_DAY = dt.date(2026, 3, 1)  # the generator's records are of this day (from 09:00 in Japan)


def demo_dir(settings: Settings) -> Path:
    return settings.data_dir.parent / "demo"


def run_demo(base: Settings, *, count: int, seed: int, keep: bool = False) -> int:
    """Runs the demo; with ``keep`` its worker stays up afterwards (``stop_kept`` stops it)."""
    console = Console(stderr=False, soft_wrap=True)  # long lines (paths, commands) stay whole
    settings = base.model_copy(update={"topic_prefix": f"demo{int(time.time())}"})
    settings = settings.model_copy(update={"policy_path": _with_example_channels(settings)})
    topology = Topology(settings.topic_prefix)
    policy = _create_topics(settings, topology, console)
    workers = _start_workers(settings, console)
    try:
        seen = _run_flow(settings, topology, policy, count=count, seed=seed, console=console)
    finally:
        if not keep:
            for worker in workers:
                stop_worker(worker)
    console.print(_summary(seen))
    if keep:
        _remember(settings, *(worker.pid for worker in workers))
    for line in closing_hints(settings, kept=keep):
        console.print(line, soft_wrap=True, highlight=False)
    passed = seen.passed
    if not passed:
        console.print("[red]demo check failed: every record must be audited once and nothing may leak[/]")
    return 0 if passed else 1


@dataclass(frozen=True)
class _Seen:
    """What one run of the flow saw: the summary prints it, and the checks judge it."""

    channels: tuple[Channel, ...]  # of the insurer's notice
    count: int
    produced: int
    rejected: int
    elapsed: float
    events: list[dict[str, Any]]
    deliveries: dict[str, list[Message]]
    dead: dict[str, list[Message]]
    quality: str
    answered: str | None
    rights: float | None
    published: str
    scraped: dict[str, float]
    chains: str

    @property
    def statuses(self) -> Counter[str]:
        return Counter(e["status"] for e in self.events)

    @property
    def leaks(self) -> int:
        return sum(b"SECRET" in (m.value() or b"") for ms in self.deliveries.values() for m in ms)

    @property
    def provided(self) -> Counter[str]:
        return Counter(channel for e in self.events for channel in e.get("provisions") or {})

    @property
    def standing(self) -> list[Channel]:
        return [c for c in self.channels if BASES[c.basis].continuous]

    @property
    def case_by_case(self) -> list[Channel]:
        return [c for c in self.channels if not BASES[c.basis].continuous]

    @property
    def passed(self) -> bool:
        return (
            len(self.events) == self.produced
            and self.leaks == 0
            and sum(self.statuses.values()) == self.produced
            and self.rights is not None
            and self.chains.startswith("hold")
            and self.published.startswith("revision")
            and all(self.provided.get(c.id, 0) > 0 for c in self.standing)
            and (self.answered is not None or not self.case_by_case)
        )


def _create_topics(settings: Settings, topology: Topology, console: Console) -> Policy:
    ensure_reachable(settings)
    policy = load_policies(settings.policy_path).latest
    create_topics(settings.kafka_common(), topology.specs(policy), partitions=4)
    console.print(f"[bold]topics[/] created with prefix {settings.topic_prefix!r}")
    return policy


def _start_workers(settings: Settings, console: Console) -> tuple[subprocess.Popen[bytes], ...]:
    """The pipeline's worker and the statistics worker, each logging to a file of the demo's."""
    log = demo_dir(settings) / f"{settings.topic_prefix}.worker.log"
    worker = start_worker(settings, "demo-0", log=log)
    console.print(f"[bold]worker[/] started (faust-streaming agent, exactly-once); its log: {_shown(log)}")
    stats_log = demo_dir(settings) / f"{settings.topic_prefix}.stats.log"
    stats_worker = start_stats(settings, log=stats_log)
    console.print(f"[bold]statistics worker[/] started (faust tables); its log: {_shown(stats_log)}")
    return worker, stats_worker


def _run_flow(
    settings: Settings, topology: Topology, policy: Policy, *, count: int, seed: int, console: Console
) -> _Seen:
    """Both companies produce; everything they produced is audited and delivered; then the steps
    that build on it: data quality, a case-by-case provision, a stop of use, statistics, the audit."""
    lines = Generator(seed=seed, sources=COMPANIES).lines_by_source(count)
    started = time.perf_counter()
    produced, rejected = _produce(settings, lines, console)
    audit = read_committed(settings, topology.audit, expected=produced, timeout=180)
    elapsed = time.perf_counter() - started
    events = [json.loads(m.value() or b"null") for m in audit]
    deliveries = {c: read_committed(settings, topology.deliver(c), timeout=30) for c in COMPANIES}
    dead = {c: read_committed(settings, topology.dead_letters(c), timeout=10) for c in COMPANIES}
    quality = _data_quality(settings, topology, console)  # before the stop step sends a record again
    answered = _case_by_case(settings, lines["jcom-insurance"], console)
    rights = _stop_of_use(settings, topology, lines["jcom"], events, console)
    published = _statistics(settings, seed=seed, first=count, console=console)
    scraped = _scrape(settings.metrics_host, settings.metrics_port)
    chains = _audit_verified(settings)
    return _Seen(
        channels=policy.handling.channels if policy.handling is not None else (),
        count=count,
        produced=produced,
        rejected=rejected,
        elapsed=elapsed,
        events=events,
        deliveries=deliveries,
        dead=dead,
        quality=quality,
        answered=answered,
        rights=rights,
        published=published,
        scraped=scraped,
        chains=chains,
    )


def _produce(settings: Settings, lines: dict[str, list[bytes]], console: Console) -> tuple[int, int]:
    """Each company's lines through its producer: records produced and lines rejected, in all."""
    produced = rejected = 0
    for company in COMPANIES:
        stats = produce_lines(settings, company, lines[company])
        produced += stats.produced
        rejected += len(stats.rejected)
        console.print(
            f"[bold]{company}[/] produced {stats.produced} records "
            f"({len(stats.rejected)} lines rejected by the producer's validation)"
        )
    return produced, rejected


def _summary(seen: _Seen) -> Table:
    table = Table(title="jointuse demo: what crossed company boundaries")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("lines generated", str(seen.count))
    table.add_row("rejected by producers (not JSON / not the schema)", str(seen.rejected))
    table.add_row("records in (ingest)", str(seen.produced))
    table.add_row("audit events", str(len(seen.events)))
    statuses = seen.statuses
    for status in ("shared", "withheld", "invalid"):
        table.add_row(f"  {status}", str(statuses.get(status, 0)))
    for company, messages in seen.deliveries.items():
        table.add_row(f"deliveries to {company}", str(len(messages)))
    for company, messages in seen.dead.items():
        table.add_row(f"dead letters of {company}", str(len(messages)))
    reasons = Counter(e["reason"] for e in seen.events if e["status"] != "shared")
    for reason, n in sorted(reasons.items()):
        table.add_row(f"  withheld/invalid: {reason}", str(n))
    dropped = Counter(d["class"] for e in seen.events for d in e["dropped"])
    for cls, n in sorted(dropped.items()):
        table.add_row(f"fields dropped: {cls}", str(n))
    table.add_row("protected values found in deliveries", str(seen.leaks))
    provided = seen.provided
    for channel in seen.standing:
        table.add_row(f"provided to {channel.id} ({channel.basis})", str(provided.get(channel.id, 0)))
    table.add_row("case by case (jointuse provide)", seen.answered or "not provided")
    rights = f"{seen.rights:.1f} s" if seen.rights is not None else "not seen"
    table.add_row("stop of use: later record withheld after", rights)
    table.add_row("data quality (GX) on jcom's ingest", seen.quality)
    table.add_row("audit chains (jointuse audit verify)", seen.chains)
    table.add_row(f"statistics published ({STATS_TABLE})", seen.published)
    table.add_row("throughput (produce → all audited)", f"{seen.produced / seen.elapsed:,.0f} records/s")
    scraped = seen.scraped
    table.add_row("worker /metrics: jointuse_records_in_total", f"{scraped.get('jointuse_records_in', 0):,.0f}")
    table.add_row("worker /metrics: jointuse_leak_canary_total", f"{scraped.get('jointuse_leak_canary', 0):,.0f}")
    table.add_row("worker /metrics: jointuse_incidents_open", f"{scraped.get('jointuse_incidents_open', 0):,.0f}")
    return table


EXAMPLE_CHANNELS = PROJECT_ROOT / "policies" / "examples" / "channels.yaml"


def _with_example_channels(settings: Settings) -> Path:
    """The notice the demo runs under: the configured one, with the example channels of the
    insurer's notice (one per basis; the seed names no recipient) when it has none of its own."""
    path = settings.policy_path
    if path.is_dir():
        return path
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    handling = data.get("handling")
    if not isinstance(handling, dict) or handling.get("channels"):
        return path
    handling["channels"] = yaml.safe_load(EXAMPLE_CHANNELS.read_text(encoding="utf-8"))
    demo_dir(settings).mkdir(parents=True, exist_ok=True)
    shown = demo_dir(settings) / f"{settings.topic_prefix}.policy.yaml"
    shown.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return shown


def _case_by_case(settings: Settings, insurer_lines: list[bytes], console: Console) -> str | None:
    """One lawyer's request answered for one insured customer with a contract, once, and recorded."""
    from streams.provision.case_by_case import Refused, Request, provide

    policy = load_policies(settings.policy_path).latest
    channel = next((c for c in policy.channels_by_id.values() if not BASES[c.basis].continuous), None)
    if channel is None:
        return None
    customer = next(
        (r["customer_id"] for r in _records(insurer_lines) if r.get("policy") and not r["consent"]["joint_use_stop"]),
        None,
    )
    if customer is None:
        return None
    request = Request(channel.id, channel.basis.value, f"DEMO-{settings.topic_prefix}", f"jcom-insurance:{customer}")
    try:
        answer = provide(settings, request)
    except Refused as exc:
        console.print(f"[yellow]provide[/] {exc}")
        return None
    console.print(
        f"[bold]provide[/] {channel.id} ({channel.basis}) answered request {answer.reference}: "
        f"{len(answer.delivery.items)} items, {len(answer.delivery.fields)} insurer fields; recorded"
    )
    return f"{channel.id}: 1 request, recorded"


def _records(lines: list[bytes]) -> list[dict[str, Any]]:
    found = []
    for line in lines:
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and isinstance(record.get("consent"), dict):
                found.append(record)
    return found


def closing_hints(settings: Settings, *, kept: bool) -> list[str]:
    """What to try next, true in the mode it is printed in: commands only while the stack runs."""
    common = (
        "Alerts: infra/prometheus/alerts.yml; dashboard: infra/grafana/dashboards/jointuse.json; "
        "topic catalog: docs/catalog.md."
    )
    if not kept:
        return [
            "The broker, the registry and the workers are stopped. To explore a running stack: "
            "`make demo KEEP=1`, then `make down` when done.",
            common,
        ]
    return [
        "Still running: the broker, the registry, the demo's worker and its statistics worker "
        "(`make down` stops them). Try:",
        f'  eval "$(infra/local.sh env)"; export JOINTUSE_TOPIC_PREFIX={settings.topic_prefix}',
        "  .venv/bin/jointuse consume --as jcom-insurance --from-beginning --max 3",
        f"  .venv/bin/jointuse stats show {STATS_TABLE} --window {STATS_DAY}",
        f"  curl -s http://{settings.metrics_host}:{settings.metrics_port}/metrics | grep '^jointuse_records_in_total'",
        common,
    ]


def _remember(settings: Settings, *pids: int) -> None:
    state = demo_dir(settings) / STATE_FILE
    state.write_text(json.dumps({"pids": list(pids), "prefix": settings.topic_prefix}), encoding="utf-8")


def stop_kept(settings: Settings) -> str | None:
    """Stops the workers a ``--keep`` demo left running; its topic prefix, or None if there was none."""
    state = demo_dir(settings) / STATE_FILE
    try:
        kept = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pids = [int(pid) for pid in kept.get("pids", [kept.get("pid")]) if pid is not None]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            deadline = time.monotonic() + 30
            while not _gone(pid):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    deadline += 10
                time.sleep(0.2)
    state.unlink(missing_ok=True)
    return str(kept["prefix"])


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (reaped here when it is this process's child, as in a test)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _scrape(host: str, port: int) -> dict[str, float]:
    """Totals of the worker's counters and the sums of its gauges, read from its /metrics endpoint
    ({} if it cannot be read)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {
        family.name: sum(
            s.value
            for s in family.samples
            if s.name.endswith("_total") or (family.type == "gauge" and not math.isnan(s.value))
        )
        for family in text_string_to_metric_families(text)
    }


def _stop_of_use(
    settings: Settings, topology: Topology, lines: list[bytes], events: list[dict[str, Any]], console: Console
) -> float | None:
    """A shared jcom customer asks to stop; the same record, sent again, must be withheld."""
    keys = settings.subject_keys()
    shared = {e["subject"] for e in events if e["status"] == "shared" and e["source"] == "jcom"}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        customer = record.get("customer_id") if isinstance(record, dict) else None
        if isinstance(customer, str) and keys.subject("jcom", customer) in shared:
            break
    else:
        return None
    subject = keys.subject("jcom", customer)
    before = exposures_of([AuditEvent.from_json(e) for e in events], frozenset({subject}))
    started = time.perf_counter()
    asked = Requester(identity_verified_by="運転免許証 (the demo's)")
    file_request(settings, RightsAction.STOP, customer, "jcom", requester=asked)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        produce_lines(settings, "jcom", [line])
        audit = read_committed(settings, topology.audit, expected=None, quiet=1.0)
        mine = [json.loads(m.value() or b"null") for m in audit]
        if any(e["subject"] == subject and e["reason"] == "stop_of_use" for e in mine):
            seconds = time.perf_counter() - started
            times = sum(e.deliveries for e in before)
            console.print(
                f"[bold]rights[/] customer {customer} of jcom had been shared {times} time(s) "
                f"({', '.join(sorted({d.recipient for d in before}))}); after a stop request their record "
                f"was withheld within {seconds:.1f} s"
            )
            return seconds
    return None


def _statistics(settings: Settings, *, seed: int, first: int, console: Console) -> str:
    """Records of the next day (new customers) move the event time past the demo's day, which
    closes its windows; the statistics worker then publishes them. Prints one table as its
    recipients read it; returns a summary line, or why there is none."""
    from streams.devtools.synthetic import Mix
    from streams.policy.calendar import JST
    from streams.stats.published import wait_for_publication

    next_day = dt.datetime.combine(STATS_DAY + dt.timedelta(days=1), dt.time(10), JST)
    later = Generator(seed=seed + 1, sources=COMPANIES, mix=Mix(invalid=0.0), start=next_day, first_index=first)
    for company, lines in later.lines_by_source(20).items():
        produce_lines(settings, company, lines)
    found = wait_for_publication(settings, STATS_TABLE, STATS_DAY, timeout=180)
    if found is None:
        return "not seen within 180 s"
    cells = sorted(found["cells"], key=lambda c: (-c["subjects"], c["values"]))
    last_day = found["window_to"] - dt.timedelta(days=1)
    shown = Table(
        title=f"statistics: {STATS_TABLE}, {found['window_from']} to {last_day}, revision {found['revision']} "
        f"(k = {found['k']}), as its recipients read it from {Topology(settings.topic_prefix).stats(STATS_TABLE)}: "
        "the largest cells and the smallest published"
    )
    for dimension in found["dimensions"]:
        shown.add_column(dimension)
    shown.add_column("subjects", justify="right")
    for index, cell in enumerate(cells):
        if len(cells) > 12 and index == 6:
            shown.add_row(*["…"] * len(found["dimensions"]), f"{len(cells) - 12} more cells")
        if len(cells) <= 12 or index < 6 or index >= len(cells) - 6:
            shown.add_row(*cell["values"], f"{cell['subjects']:,}")
    console.print(shown)
    total = f"{found['total']:,}" if found["total"] is not None else "withheld"
    return (
        f"revision {found['revision']}: {len(cells)} cells, total {total}; suppressed "
        f"{found['suppressed_below_k']} below k and {found['suppressed_to_protect']} more"
    )


def _audit_verified(settings: Settings) -> str:
    """The demo's own audit topic against its chains and signed checkpoints."""
    from streams.audit.verify import verify_deployment

    if settings.audit_key_file is None:
        return "not checked: no JOINTUSE_AUDIT_KEY_FILE"
    verifier = verify_deployment(settings)
    first = verifier.first
    if first is None:
        return f"hold: {verifier.events} events, {verifier.checkpoints_matched} checkpoints"
    return f"broken at {first}"


def _data_quality(settings: Settings, topology: Topology, console: Console) -> str:
    from streams.kafka.reader import RangeSpec
    from streams.quality.batch_run import run_batch

    run = run_batch(settings, RangeSpec(topology.ingest("jcom")), docs_dir=None, max_records=100_000)
    result = run.result
    summary = f"{result.evaluated - len(result.failures)}/{result.evaluated} expectations passed on {result.rows}"
    for failure in result.failures:
        console.print(f"[yellow]dq[/] {failure.expectation} on {failure.column}: {failure.unexpected_count} unexpected")
    return summary
