"""Cost per joint user, in process, no Kafka: the shipped notice (2 joint users) against
the same notice with 8 more group companies (10 joint users, default purposes: every record goes to
9 recipients). Two measures for each: the floor (decode, decide, encode every delivery) and the full
ingest processor (framing, the governed reader, the canary, the audit event, statistics cells).

Short runs alternate between the two policies and the best run of each counts: on a shared machine
the best run is the one least disturbed, which is what a code path costs."""

from __future__ import annotations

import datetime as dt
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.devtools.group import group_company_ids, group_policy_text, with_group_companies
from streams.devtools.synthetic import Generator, Mix
from streams.messages import InMessage, Run
from streams.policy.engine import Engine
from streams.policy.loader import PolicySet, load_policies
from streams.policy.pseudonym import SubjectKeys
from streams.processors.ingest import Deciding, Processor
from streams.serde.governed import GovernedSchemas
from streams.serde.json_form import JsonForm
from streams.serde.wire import frame
from streams.settings import PROJECT_ROOT
from streams.topology import Topology

POLICY = PROJECT_ROOT / "policies" / "jcom-group.yaml"
# The tree whose ingest processor this one's is held against (a bound in bench/run.py's
# ``TARGETS``), measured again in every run beside this tree's, since a figure from another day on
# a shared machine compares nothing.
BASELINE = "233eae0"
ADDED_COMPANIES = 8
WRITER_ID = 1


class _Registry:
    """The one writer schema, and an id for each delivery subject: what the processor asks of a registry."""

    def __init__(self, writer: dict[str, Any]) -> None:
        self.writer = writer
        self.subjects: dict[str, int] = {}

    def schema(self, schema_id: int) -> dict[str, Any]:
        return self.writer

    def register(self, subject: str, schema: Any) -> int:
        return self.subjects.setdefault(subject, 100 + len(self.subjects))


def policies_with(joint_users: int) -> PolicySet:
    if joint_users == 2:
        return load_policies(POLICY)
    return with_group_companies(POLICY.read_text(encoding="utf-8"), _added(joint_users))


def policy_file_with(joint_users: int) -> Path:
    """A policy file with ``joint_users`` joint users, for workers (the shipped one for 2)."""
    if joint_users == 2:
        return POLICY
    folder = Path(tempfile.mkdtemp(prefix="jointuse-bench-"))
    written = folder / POLICY.name
    written.write_text(group_policy_text(POLICY.read_text(encoding="utf-8"), _added(joint_users)), encoding="utf-8")
    return written


def _added(joint_users: int) -> list[tuple[str, None]]:
    return [(company, None) for company in group_company_ids(joint_users - 2)]


def _best(runs: dict[str, Callable[[], int]], rounds: int = 7) -> dict[str, float]:
    best = dict.fromkeys(runs, 0.0)
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            count = run()
            best[name] = max(best[name], count / (time.perf_counter() - started))
    return best


# Runs in a tree (its own code and shipped policy on the path; names both trees have): the full
# ingest processor at 2 joint users, the best of short passes over the same synthetic inputs.
_PROCESSOR_RATE = """
import datetime as dt, json, sys, time
from bench.joint_users import WRITER_ID, _Registry
from streams.devtools.synthetic import Generator, Mix
from streams.messages import InMessage
from streams.policy.loader import load_policies
from streams.policy.pseudonym import SubjectKeys
from streams.processors.ingest import Processor
from streams.serde.governed import GovernedSchemas
from streams.serde.json_form import JsonForm
from streams.serde.wire import frame
from streams.settings import PROJECT_ROOT
from streams.topology import Topology
governed = GovernedSchemas.load(PROJECT_ROOT / "schemas")
version = governed.latest
form = JsonForm(version.classified)
mix = Mix(secrecy=1.0, sensitive=1.0, insurer=1.0, marketing_opt_out=0.0, joint_use_stop=0.0, invalid=0.0)
records = [form.to_native(r) for _, r in Generator(seed=1, mix=mix).records(int(sys.argv[1])) if isinstance(r, dict)]
topology = Topology("bench")
inputs = [
    InMessage(topology.ingest(r["source_company"]), n % 4, n, r["customer_id"].encode(),
              frame(WRITER_ID, version.codec.encode(r)), 0, [])
    for n, r in enumerate(records)
]
now = dt.datetime.now(dt.UTC)
policies = load_policies(PROJECT_ROOT / "policies" / "jcom-group.yaml")
registry = _Registry(dict(version.classified.raw))
keys = SubjectKeys(b"bench-subject-key-0123456789")
try:
    from streams.messages import Run
    from streams.processors.ingest import Deciding
except ImportError:  # a tree from before the processor took its run and its deciding as values
    processor = Processor(topology=topology, policies=policies, governed=governed, registry=registry,
                          subjects=keys, now=lambda: now)
else:
    processor = Processor(Run(topology, keys), Deciding(policies), governed, registry, now=lambda: now)
best = 0.0
for _ in range(int(sys.argv[2])):
    started = time.perf_counter()
    for message in inputs:
        processor.process(message)
    best = max(best, len(inputs) / (time.perf_counter() - started))
print("RATE " + json.dumps(round(best)), flush=True)
"""


def against_baseline(commit: str = BASELINE, *, rounds: int = 5, count: int = 4_000) -> dict[str, Any]:
    """The full ingest processor at 2 joint users in this tree against ``commit``'s, each in its own
    process, rounds alternating (the machine's drift falls on both); each round keeps its best pass."""
    from bench.against import run_in, short, worktree
    from bench.progress import stage

    baseline, here = short(commit), short("HEAD")
    this: list[int] = []
    that: list[int] = []
    with worktree(baseline) as tree:
        for n in range(1, rounds + 1):
            with stage(f"processor in process: round {n} of {rounds}, this tree ({here}) and {baseline}"):
                this.append(run_in(PROJECT_ROOT, _PROCESSOR_RATE, str(count), "5", tag="RATE"))
                that.append(run_in(tree, _PROCESSOR_RATE, str(count), "5", tag="RATE"))
    return {
        "baseline": baseline,
        "processor_2_joint_users_this_records_per_s": this,
        "processor_2_joint_users_baseline_records_per_s": that,
        "processor_2_joint_users_over_baseline": round(statistics.median(this) / statistics.median(that), 3),
    }


def run(count: int = 4_000) -> dict[str, float]:
    governed = GovernedSchemas.load(PROJECT_ROOT / "schemas")
    version = governed.latest
    form = JsonForm(version.classified)
    mix = Mix(secrecy=1.0, sensitive=1.0, insurer=1.0, marketing_opt_out=0.0, joint_use_stop=0.0, invalid=0.0)
    records = [form.to_native(r) for _, r in Generator(seed=1, mix=mix).records(count) if isinstance(r, dict)]
    bodies = [version.codec.encode(r) for r in records]
    now = dt.datetime.now(dt.UTC)
    topology = Topology("bench")
    inputs = [
        InMessage(
            topology.ingest(r["source_company"]), n % 4, n, r["customer_id"].encode(), frame(WRITER_ID, body), 0, []
        )
        for n, (r, body) in enumerate(zip(records, bodies, strict=True))
    ]
    runs: dict[str, Callable[[], int]] = {}
    deliveries: dict[int, int] = {}
    for users in (2, 2 + ADDED_COMPANIES):
        policies = policies_with(users)
        engine = Engine(version.classified, policies)
        processor = Processor(
            Run(topology, SubjectKeys(b"bench-subject-key-0123456789")),
            Deciding(policies),
            governed,
            _Registry(dict(version.classified.raw)),
            now=lambda: now,
        )
        deliveries[users] = sum(
            len(engine.decide(version.codec.decode(b), r["source_company"], now=now, trusted=True).deliveries)
            for r, b in zip(records[:200], bodies[:200], strict=True)
        )

        def floor(engine: Engine = engine) -> int:
            encode = version.delivery_codec.encode
            for body in bodies:
                record = version.codec.decode(body)
                decision = engine.decide(record, record["source_company"], now=now, trusted=True)
                encoded: dict[int, bytes] = {}
                for delivery in decision.deliveries.values():
                    if id(delivery.record) not in encoded:
                        encoded[id(delivery.record)] = encode(delivery.record)
            return len(bodies)

        def processed(processor: Processor = processor) -> int:
            for message in inputs:
                processor.process(message)
            return len(inputs)

        runs[f"floor_{users}"] = floor
        runs[f"processor_{users}"] = processed
    best = _best(runs)
    many = 2 + ADDED_COMPANIES
    return {
        "deliveries_per_record_2": round(deliveries[2] / 200, 2),
        f"deliveries_per_record_{many}": round(deliveries[many] / 200, 2),
        "floor_2_joint_users_records_per_s": round(best["floor_2"]),
        f"floor_{many}_joint_users_records_per_s": round(best[f"floor_{many}"]),
        f"floor_{many}_over_2": round(best[f"floor_{many}"] / best["floor_2"], 3),
        "processor_2_joint_users_records_per_s": round(best["processor_2"]),
        f"processor_{many}_joint_users_records_per_s": round(best[f"processor_{many}"]),
        f"processor_{many}_over_2": round(best[f"processor_{many}"] / best["processor_2"], 3),
    }


if __name__ == "__main__":
    print(run())
