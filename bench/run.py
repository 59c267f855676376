"""Benchmarks (``make bench``): writes bench/results.json and docs/benchmarks.md. Each figure has a
baseline measured in the same run (in process, the Avro decode of the same record; through the
broker, the Quix Streams peer): machines are noisy, so ratios matter more than absolute figures."""

from __future__ import annotations

import datetime as dt
import io
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from streams.audit.core.chain import AuditChain
from streams.devtools.synthetic import Generator, Mix
from streams.policy.classification import delivery_schema, load_schema
from streams.policy.engine import Engine
from streams.policy.loader import load_policies
from streams.serde.avro_codec import AvroCodec
from streams.serde.json_form import JsonForm
from streams.settings import PROJECT_ROOT
from streams.stats.core.contributions import contribution

RESULTS = PROJECT_ROOT / "bench" / "results.json"
PAGE = PROJECT_ROOT / "docs" / "benchmarks.md"
FINDINGS = "## Findings"  # the heading of the page's part written by hand


def _rate(run: Callable[[], int], repetitions: int = 3) -> float:
    rates = []
    for _ in range(repetitions):
        started = time.perf_counter()
        count = run()
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def bench_decide(count: int = 20_000) -> dict[str, float]:
    schema = load_schema(PROJECT_ROOT / "schemas" / "customer_record.v1.avsc")
    engine = Engine(schema, load_policies(PROJECT_ROOT / "policies"))
    form = JsonForm(schema)
    codec = AvroCodec(schema.raw)
    mix = Mix(secrecy=1.0, sensitive=1.0, insurer=1.0, marketing_opt_out=0.0, joint_use_stop=0.0, invalid=0.0)
    records = [form.to_native(r) for _, r in Generator(seed=1, mix=mix).records(1000) if isinstance(r, dict)]
    bodies = [codec.encode(r) for r in records]
    decoded = [codec.decode(b) for b in bodies]
    now = dt.datetime.now(dt.UTC)
    rounds = max(1, count // len(records))

    def decode() -> int:
        for _ in range(rounds):
            for body in bodies:
                codec.decode(body)
        return rounds * len(bodies)

    def decide(trusted: bool) -> Callable[[], int]:
        def run() -> int:
            for _ in range(rounds):
                for record in decoded:
                    engine.decide(record, record["source_company"], now=now, trusted=trusted)
            return rounds * len(decoded)

        return run

    delivery_codec = AvroCodec(delivery_schema(schema))

    def floor() -> int:
        """The irreducible Python work of the pipeline: decode, decide, encode each delivery."""
        for _ in range(rounds):
            for body in bodies:
                record = codec.decode(body)
                for delivery in engine.decide(
                    record, record["source_company"], now=now, trusted=True
                ).deliveries.values():
                    delivery_codec.encode(delivery.record)
        return rounds * len(bodies)

    def audited(chain: AuditChain | None) -> Callable[[], int]:
        """The floor plus each record's audit event (as the ingest processor builds it), sealed
        into a hash chain or not: the chain's cost per event is the ratio of the two."""

        def run() -> int:
            for _ in range(rounds):
                for n, body in enumerate(bodies):
                    record = codec.decode(body)
                    decision = engine.decide(record, record["source_company"], now=now, trusted=True)
                    for delivery in decision.deliveries.values():
                        delivery_codec.encode(delivery.record)
                    event = orjson.dumps(
                        {
                            "subject": f"{n:064x}",
                            "status": decision.status.value,
                            "recipients": {
                                r: {"purposes": list(d.purposes), "items": list(d.items)}
                                for r, d in decision.deliveries.items()
                            },
                            "dropped": [{"path": d.path, "class": d.cls} for d in decision.dropped],
                            "policy_version": decision.policy_version,
                            "input": {"topic": "bench", "partition": 0, "offset": n, "timestamp_ms": 0},
                        }
                    )
                    if chain is not None:
                        chain.seal(n % 4, event)
                if chain is not None:
                    chain.commit()
            return rounds * len(bodies)

        return run

    policy = load_policies(PROJECT_ROOT / "policies").latest
    at = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)

    def counted(with_stats: bool) -> Callable[[], int]:
        """The floor, plus each shared record's statistics contribution (its cells in every table
        of the policy, as the ingest processor writes it) or not."""

        def run() -> int:
            for _ in range(rounds):
                for body in bodies:
                    record = codec.decode(body)
                    decision = engine.decide(record, record["source_company"], now=now, trusted=True)
                    for delivery in decision.deliveries.values():
                        delivery_codec.encode(delivery.record)
                    if with_stats and decision.deliveries:
                        orjson.dumps(contribution(record, policy, purposes=decision.purposes, at=at))
            return rounds * len(bodies)

        return run

    naive_reader, naive_writer = _avro_package_codec(schema.raw, delivery_schema(schema))

    def naive() -> int:
        """The same rules with the reference ``avro`` package per record (one pass: it is slow)."""
        for body in bodies:
            record = naive_reader(body)
            for delivery in engine.decide(record, record["source_company"], now=now).deliveries.values():
                naive_writer(delivery.record)
        return len(bodies)

    baseline = _rate(decode)
    validated = _rate(decide(False))
    trusted = _rate(decide(True))
    floor_rate = _rate(floor)
    naive_rate = _rate(naive)
    unchained = _rate(audited(None))
    chained = _rate(audited(AuditChain("bench")))
    sample = orjson.dumps({"subject": "0" * 64, "status": "shared", "pad": "x" * 600})  # an audit event's size

    def seal_only() -> int:
        chain = AuditChain("bench")
        for n in range(count):
            chain.seal(n % 4, sample)
        chain.commit()
        return count

    seals_per_s = _rate(seal_only)
    # Alternating short runs, the best of each: the two differ by a few tens of µs a record, less
    # than this machine's drift between two medians taken a minute apart.
    runs: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(7):
        for with_stats_on in (False, True):
            runs[with_stats_on].append(_rate(counted(with_stats_on), 1))
    without_stats, with_stats = max(runs[False]), max(runs[True])
    return {
        "floor_with_statistics_records_per_s": round(with_stats),
        "statistics_over_none": round(with_stats / without_stats, 3),
        "audit_chain_seal_us_per_event": round(1e6 / seals_per_s, 2),
        "floor_with_audit_events_records_per_s": round(unchained),
        "floor_with_audit_chain_records_per_s": round(chained),
        "audit_chain_over_no_chain": round(chained / unchained, 3),
        "floor_records_per_s": round(floor_rate),
        "naive_avro_package_records_per_s": round(naive_rate),
        "floor_over_naive": round(floor_rate / naive_rate, 2),
        "avro_decode_records_per_s": round(baseline),
        "decide_validated_records_per_s": round(validated),
        "decide_trusted_records_per_s": round(trusted),
        "decide_validated_over_decode": round(validated / baseline, 2),
        "decide_trusted_over_decode": round(trusted / baseline, 2),
    }


def bench_governed_decode(count: int = 10_000, repetitions: int = 15) -> dict[str, float]:
    """The cost of reading through the governed schemas (the trust boundary), against reading with
    the writer schema named by the id, as the worker did before. Both include the framing and the
    per-id lookup. Short runs alternate, so drift hits all alike, and the best run of each counts:
    on a shared machine the best is the run least disturbed, which is what a code path costs."""
    from streams.serde.governed import GovernedReader, GovernedSchemas
    from streams.serde.wire import frame, unframe

    class StaticRegistry:  # two fixed writer schemas; the reader asks once per id
        def __init__(self, schemas: dict[int, dict[str, Any]]) -> None:
            self.schemas = schemas

        def schema(self, schema_id: int) -> dict[str, Any]:
            return self.schemas[schema_id]

        def register(self, subject: str, schema: Any) -> int:
            raise NotImplementedError("the decode benchmark registers nothing")

    governed = GovernedSchemas.load(PROJECT_ROOT / "schemas")
    raw = dict(governed.versions[0].classified.raw)
    form = JsonForm(governed.versions[0].classified)
    mix = Mix(secrecy=1.0, sensitive=1.0, insurer=1.0, marketing_opt_out=0.0, joint_use_stop=0.0, invalid=0.0)
    records = [form.to_native(r) for _, r in Generator(seed=1, mix=mix).records(1000) if isinstance(r, dict)]
    extended = json.loads(json.dumps(raw))
    extended["fields"].append({"name": "producer_only", "type": ["null", "string"], "default": None})
    same_id, extended_id = 1, 2
    registry = StaticRegistry({same_id: raw, extended_id: extended})
    writer_codecs = {same_id: AvroCodec(raw), extended_id: AvroCodec(extended)}
    same = [frame(same_id, writer_codecs[same_id].encode(r)) for r in records]
    resolved = [frame(extended_id, writer_codecs[extended_id].encode(r)) for r in records]
    reader = GovernedReader(governed, registry)
    rounds = max(1, count // len(records))

    def writer_decode(values: list[bytes]) -> Callable[[], int]:
        def run() -> int:
            for _ in range(rounds):
                for value in values:
                    schema_id, body = unframe(value)
                    writer_codecs[schema_id].decode(body)
            return rounds * len(values)

        return run

    def governed_decode(values: list[bytes]) -> Callable[[], int]:
        def run() -> int:
            for _ in range(rounds):
                for value in values:
                    reader.decode(value)
            return rounds * len(values)

        return run

    figures: dict[str, list[float]] = {"before": [], "fast": [], "resolved": []}
    for _ in range(repetitions):
        figures["before"].append(_rate(writer_decode(same), 1))
        figures["fast"].append(_rate(governed_decode(same), 1))
        figures["resolved"].append(_rate(governed_decode(resolved), 1))
    before, fast, slow = (max(figures[k]) for k in ("before", "fast", "resolved"))
    return {
        "writer_schema_decode_records_per_s": round(before),
        "governed_fast_path_records_per_s": round(fast),
        "governed_resolved_records_per_s": round(slow),
        "governed_fast_path_cost_over_writer_decode_pct": round((before / fast - 1) * 100, 1),
        "governed_resolved_cost_over_writer_decode_pct": round((before / slow - 1) * 100, 1),
    }


def _avro_package_codec(writer: Any, delivery: Any) -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    import avro.io
    import avro.schema

    from streams.serde.avro_schema import strip_logical_types

    reader_schema = avro.schema.parse(json.dumps(strip_logical_types(writer)))
    writer_schema = avro.schema.parse(json.dumps(strip_logical_types(delivery)))
    datum_reader = avro.io.DatumReader(reader_schema)
    datum_writer = avro.io.DatumWriter(writer_schema)

    def read(body: bytes) -> Any:
        return datum_reader.read(avro.io.BinaryDecoder(io.BytesIO(body)))

    def write(record: Any) -> bytes:
        out = io.BytesIO()
        datum_writer.write(record, avro.io.BinaryEncoder(out))
        return out.getvalue()

    return read, write


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """Each figure against its baseline or its alternative, as ratios of figures of the same run."""
    pipeline = results.get("pipeline", {})
    in_process = results.get("decide", {})
    out: dict[str, float] = {}
    eos = pipeline.get("faust_exactly_once", {}).get("records_per_s")
    if eos and in_process:
        out["pipeline_over_floor"] = round(eos / in_process["floor_records_per_s"], 3)
        out["pipeline_over_naive"] = round(eos / in_process["naive_avro_package_records_per_s"], 2)
    if eos and "passthrough" in pipeline:
        out["pipeline_over_passthrough"] = round(eos / pipeline["passthrough"]["records_per_s"], 3)
    peer = pipeline.get("quix_exactly_once", {}).get("records_per_s")
    if eos and peer:
        out["pipeline_over_peer"] = round(eos / peer, 2)
    confluent = pipeline.get("confluent_exactly_once", {}).get("records_per_s")
    if confluent and in_process:
        out["confluent_runtime_over_floor"] = round(confluent / in_process["floor_records_per_s"], 3)
    if confluent and peer:
        out["confluent_runtime_over_peer"] = round(confluent / peer, 2)
    if in_process.get("audit_chain_over_no_chain"):
        out["audit_chain_over_no_chain"] = in_process["audit_chain_over_no_chain"]
    if in_process.get("statistics_over_none"):
        out["statistics_contributions_over_none"] = in_process["statistics_over_none"]
    for runtime in ("faust", "confluent"):
        over_tls = results.get("tls", {}).get(f"{runtime}_exactly_once_tls", {}).get("records_per_s")
        plain = results.get("tls", {}).get(f"{runtime}_exactly_once_plaintext", {}).get("records_per_s")
        if over_tls and plain:
            out[f"{runtime}_tls_over_plaintext"] = round(over_tls / plain, 3)
    stats_on = pipeline.get("faust_exactly_once_statistics_on", {}).get("records_per_s")
    stats_off = pipeline.get("faust_exactly_once_statistics_off", {}).get("records_per_s")
    if stats_on and stats_off:
        out["pipeline_statistics_on_over_off"] = round(stats_on / stats_off, 3)
    if eos and stats_off:  # contributions written, no statistics worker beside it
        out["pipeline_contributions_only_over_off"] = round(eos / stats_off, 3)
    fencing = results.get("fencing", {})
    fenced = fencing.get("faust_fenced", {}).get("records_per_s")
    unfenced = fencing.get("faust_unfenced", {}).get("records_per_s")
    per_partition = fencing.get("faust_fenced_one_transaction_per_partition", {}).get("records_per_s")
    if fenced and unfenced:
        out["fencing_fenced_over_unfenced"] = round(fenced / unfenced, 3)
    if fenced and per_partition:
        out["fencing_per_partition_transactions_over_fenced"] = round(per_partition / fenced, 3)
    broker = results.get("joint_users_broker", {})
    for name, value in broker.items():
        if "_over_peer_" in name:
            out[f"joint_users_broker_{name}"] = value
    joint = results.get("joint_users", {})
    for name in ("floor_10_over_2", "processor_10_over_2", "processor_2_joint_users_over_baseline"):
        if name in joint:
            out[f"joint_users_{name}"] = joint[name]
    index = results.get("subject_index", {})
    if "report_p99_large_over_small" in index:
        out["index_report_p99_1m_over_100k"] = index["report_p99_large_over_small"]
    one = pipeline.get("faust_scale_out_1_workers_2_partitions", {}).get("records_per_s")
    two = pipeline.get("faust_scale_out_2_workers_2_partitions", {}).get("records_per_s")
    if one and two:
        out["two_workers_over_one"] = round(two / one, 2)
    return out


# The bounds the figures must keep: each figure's name, where it is in the results, and its bound.
TARGETS: tuple[tuple[str, tuple[str, ...], str, float], ...] = (
    ("floor, 10 over 2 joint users", ("joint_users", "floor_10_over_2"), ">=", 0.6),
    (
        "ingest processor in process over 233eae0, 2 joint users",
        ("joint_users", "processor_2_joint_users_over_baseline"),
        ">=",
        1.6,
    ),
    # Each runtime as it runs by default (deciding itself); the results hold each with two
    # deciding processes beside it (JOINTUSE_DECIDE_PROCESSES), which meets none of these that the
    # default misses (docs/benchmarks.md).
    *(
        (
            f"{runtime} runtime over the peer, {users} joint users",
            ("joint_users_broker", f"{runtime}_over_peer_{users}_joint_users"),
            ">=",
            bound,
        )
        for users in (2, 10)
        for runtime, bound in (("confluent", 1.2), ("faust", 1.0))
    ),
    ("faust p99 at half rate, ms", ("pipeline", "faust_latency_at_half_rate", "p99_ms"), "<=", 250),
    ("confluent p99 at half rate, ms", ("pipeline", "confluent_latency_at_half_rate", "p99_ms"), "<=", 250),
)


def targets(results: dict[str, Any]) -> dict[str, str]:
    """Each bound of ``TARGETS`` against its figure in ``results``: met, not met, or not measured."""
    out: dict[str, str] = {}
    for name, path, compare, bound in TARGETS:
        value: Any = results
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, int | float):
            out[name] = f"not measured ({compare} {bound})"
            continue
        met = value >= bound if compare == ">=" else value <= bound
        out[name] = f"{value} ({compare} {bound}: {'met' if met else 'not met'})"
    return out


# What each section measures and what bounds it now, printed above its figures.
ABOUT = {
    "decide": "The policy engine alone, in process: decode, decide and encode every delivery (the floor), "
    "with and without the audit chain and the statistics contributions. Bound by Python: Avro decode and "
    "encode (cavro), the projection and the canary's walk.",
    "governed_decode": "Reading a record written with the governed schema (the fast path) against one written "
    "with another writer schema (resolved into the governed version).",
    "pipeline": "One worker through the local broker: a backlog's rate on each runtime and guarantee, and "
    "end-to-end latency (input timestamp to its audit event visible to a read_committed reader) at half "
    "that rate, 10 s measured after 3 s of warm-up at the rate (the warm-up's p99 is kept beside: a "
    "worker's first seconds of traffic run behind, then it is steady); the run with the median p99 of the "
    "repetitions is kept, with every run's p99. The Quix Streams peer commits every 0.5 s, which its "
    "latency shows. The Quix Streams peer does less per record (no audit chain, canary or statistics) and "
    "reads and writes Avro with fastavro, as Quix Streams' own serializers do, where the worker uses cavro. "
    "Bound by the worker's Python per record (the processor: about 81 µs a record in process) and the "
    "runtime's per-message cost (2 messages per input: delivery and audit event; the statistics "
    "contributions of a transaction go as one message; aiokafka's cost is the larger); the broker shares "
    "the same two cores. Every run goes over TLS (SCRAM over TLS, as deployed). Findings below: the "
    "data-quality child, the transaction retry backoff, deciding "
    "on the event loop, whole fetches, the garbage collector, the pseudonym's MAC.",
    "tls": "What TLS costs: each runtime, exactly once, through the local broker's SCRAM-over-TLS listener "
    "(as deployed) and through the same broker's plaintext SASL listener, alternating, so that drift on "
    "the machine hits both alike (`<runtime>_tls_over_plaintext`).",
    "fencing": "What exactly-once's fencing (KIP-447 offsets with the group's generation) costs the faust runtime.",
    "subject_index": "The subject index: building rows from audit events, a report's lookup, restores.",
    "joint_users": "Cost per joint user in process: the shipped notice (2 joint users, 1 delivery a record) "
    "against 8 more group companies (10 joint users, 9 deliveries). Recipients of the same items share one "
    "projection, one encoding and one canary walk, so 9 deliveries cost little more than 1. The full ingest "
    "processor at 2 joint users is also measured against the baseline tree (the baseline row): its own "
    "tree, code and shipped policy in a second process, rounds alternating, each keeping its best pass "
    "over 4,000 inputs. Bound by Python per record: Avro decode and encode (cavro, compiled), decide, the "
    "statistics contribution, the canary and the audit event (Findings below: where the time goes).",
    "batch_wait": "Latency at a steady rate for each JOINTUSE_MAX_BATCH_WAIT_MS on both runtimes. A batch is "
    "decided when full or that long after it began to fill; what came while the last batch committed is "
    "taken at once. Bound by the transaction (offsets to the group coordinator, then the commit) and by "
    "the batch ahead of it (a pipelined loop decides batch N+1 while N commits): shorter waits make more, "
    "smaller transactions whose fixed cost outweighs the wait saved. 50 ms is the default.",
    "joint_users_broker": "Cost per joint user through the broker: both runtimes and the Quix peer, exactly "
    "once, with the shipped notice (2 joint users, one delivery a record) and with 8 more group companies "
    "(10 joint users, 9 deliveries a record). Each writes its deliveries and an audit event per input (2 "
    "messages at 2 joint users, 10 at 10): the peer's audit event is a status and a time, the worker's the "
    "full event, sealed in its chain; the worker's statistics contributions go as one message a "
    "transaction. Backlogs of 60,000 records (--joint-users-count); rounds alternate the three; medians. "
    "The _deciding2 rows run each worker with two deciding processes (JOINTUSE_DECIDE_PROCESSES=2): "
    "children decide each batch while the worker fetches, seals, commits and counts. At 10 joint users "
    "messages per input bound all three, the peer most. At 2 joint users the worker does more Python per "
    "record than the peer (audit chain, canary, statistics, the full audit event, metrics, data-quality "
    "sampling), and one core bounds it; two deciding processes give it the second core (Findings below: "
    "where the CPU goes, the backlog's length, a broker left with many partitions).",
    "against": "This tree against an earlier commit (--against), through the broker: rounds alternate the "
    "two trees, one backlog per runtime each, so the machine's drift falls on both alike. The ratio of the "
    "medians says whether a change kept the pipeline's speed; the Quix peer runs the same code in both "
    "trees and shows the noise.",
    "ratios": "Ratios of figures of this run.",
    "targets": "The bounds the figures must keep, each against its figure above (a section measured alone "
    "by --only keeps the others of the last run: see each section's date).",
}


def write_results(results: dict[str, Any], repetitions: int) -> str:
    """Writes bench/results.json and docs/benchmarks.md, keeping the page's findings; returns the page."""
    measured = results.get("sections_measured_at", {})
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# Benchmarks",
        "",
        f"Measured {results['measured_at']} on this project's 2-core machine.",
        f"Each throughput figure is the median of {repetitions} repetitions; the ratios compare figures of"
        " this one run.",
        "",
    ]
    for section, values in results.items():
        if not isinstance(values, dict) or section == "sections_measured_at":
            continue
        lines += [f"## {section}", ""]
        if section in ABOUT:
            lines += [ABOUT[section], ""]
        if section in measured:
            lines += [f"Measured {measured[section]}.", ""]
        lines += ["| measure | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in values.items()]
        lines.append("")
    page = "\n".join(lines) + findings(PAGE)
    PAGE.write_text(page, encoding="utf-8")
    return page


def findings(page: Path) -> str:
    """The page's part written by hand, from its ``FINDINGS`` heading to its end: what profiles and
    side-by-side runs showed, the evidence for choices in the code, which a new run must not erase."""
    text = page.read_text(encoding="utf-8") if page.exists() else ""
    at = text.find(f"\n{FINDINGS}\n")
    return text[at:] if at >= 0 else ""


_SECTIONS = {
    "decide": "decide",
    "governed": "governed_decode",
    "pipeline": "pipeline",
    "fencing": "fencing",
    "tls": "tls",
    "index": "subject_index",
    "joint_users": "joint_users",
    "batch_wait": "batch_wait",
    "joint_users_broker": "joint_users_broker",
    "against": "against",
}


def main() -> None:
    import argparse

    from bench.progress import stage

    parser = argparse.ArgumentParser(
        description="jointuse benchmarks; writes bench/results.json and docs/benchmarks.md"
    )
    parser.add_argument("--only", choices=list(_SECTIONS), help="run one part only")
    parser.add_argument(
        "--index-sizes", default="100000,1000000", help="audit events the subject index is built from (smallest first)"
    )
    parser.add_argument("--count", type=int, default=20_000, help="records in the pipeline backlog")
    parser.add_argument(
        "--joint-users-count",
        type=int,
        default=60_000,
        help="records in each joint_users_broker backlog, whose ratios set the runtimes against the "
        "Quix peer (20,000 records, about 2.5 s at 2 joint users, move them by a tenth between runs)",
    )
    parser.add_argument("--runtimes", default="faust,confluent,quix", help="pipeline runtimes to measure")
    parser.add_argument("--repetitions", type=int, default=3, help="repetitions per figure (the median is kept)")
    parser.add_argument("--against", default=None, help="with --only against: the earlier commit (e.g. 86355f6)")
    parser.add_argument("--rounds", type=int, default=5, help="with --only against: rounds of both trees")
    args = parser.parse_args()
    if args.only == "against" and not args.against:
        parser.error("--only against needs --against COMMIT")
    now = dt.datetime.now(dt.UTC).isoformat()
    # A partial run (--only) replaces its own section and keeps the others of the last full run.
    previous = json.loads(RESULTS.read_text(encoding="utf-8")) if args.only and RESULTS.exists() else {}
    results: dict[str, Any] = {**previous, "measured_at": previous.get("measured_at", now)}
    measured: dict[str, str] = dict(results.pop("sections_measured_at", {}))
    try:
        _measure(args, results)
    finally:
        from bench.pipeline import drop_made_topics

        with stage("deleting the topics this run made"):
            drop_made_topics()
    for part, section in _SECTIONS.items():
        if args.only in (None, part) and section in results:
            measured[section] = now  # measured in this run
    results["ratios"] = ratios(results)
    results["targets"] = targets(results)
    results["sections_measured_at"] = measured
    print(write_results(results, args.repetitions))


def _measure(args: Any, results: dict[str, Any]) -> None:
    """The sections ``args`` asks for, each into ``results``."""
    from bench.progress import stage

    if args.only in (None, "decide"):
        with stage("decide: the policy engine alone, no Kafka"):
            results["decide"] = bench_decide()
    if args.only in (None, "joint_users"):
        from bench.joint_users import against_baseline
        from bench.joint_users import run as run_joint_users

        with stage("joint users: 2 against 10, in process"):
            results["joint_users"] = {**run_joint_users(), **against_baseline()}
    if args.only in (None, "governed"):
        with stage("governed decode path"):
            results["governed_decode"] = bench_governed_decode()
    if args.only in (None, "pipeline"):
        from bench.pipeline import run as run_pipeline

        results["pipeline"] = run_pipeline(args.count, args.repetitions, tuple(args.runtimes.split(",")))
    if args.only in (None, "batch_wait"):
        from bench.pipeline import batch_wait

        results["batch_wait"] = batch_wait()
    if args.only in (None, "joint_users_broker"):
        from bench.pipeline import joint_users_through_the_broker

        results["joint_users_broker"] = joint_users_through_the_broker(args.joint_users_count, args.repetitions)
    if args.only in (None, "fencing"):
        from bench.pipeline import fencing_cost
        from streams.settings import load_settings

        base = load_settings().model_copy(update={"metrics_port": 0})
        results["fencing"] = fencing_cost(base, count=args.count, repetitions=args.repetitions)
    if args.only in (None, "tls"):
        from bench.pipeline import tls_cost
        from streams.settings import load_settings

        base = load_settings().model_copy(update={"metrics_port": 0})
        if base.security_protocol.endswith("SSL"):
            results["tls"] = tls_cost(base, count=args.count, repetitions=args.repetitions)
    if args.only == "against":  # never in a full run: it needs a commit to compare with
        from bench.against import run as run_against

        results["against"] = run_against(
            args.against, rounds=args.rounds, runtimes=tuple(args.runtimes.split(",")), count=args.count
        )
    if args.only in (None, "index"):
        from bench.subject_index import run as run_index

        results["subject_index"] = run_index(tuple(int(n) for n in args.index_sizes.split(",")))


if __name__ == "__main__":
    main()
