"""One worker end to end through the local broker: sustained throughput, then latency at half of it.

Throughput: a backlog of records is produced first; the worker's rate is the backlog divided by the
time between its first and last committed audit event. Latency: records are produced at half that
rate, and each one's latency is the moment its audit event becomes visible to a read_committed
consumer minus the record's produce timestamp (so it includes the transaction commit).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer

from bench.progress import stage
from streams.devtools.processes import start_stats, start_worker, stop_worker
from streams.devtools.synthetic import Generator, Mix
from streams.kafka import clients
from streams.kafka.admin import create_topics
from streams.kafka.company_client import produce_lines
from streams.policy.loader import load_policies
from streams.settings import PROJECT_ROOT, Guarantee, Settings, load_settings
from streams.topology import Topology

# Every input is written with version 1: the Quix peer reads that version only.
SCHEMA_VERSION = "1"


class AuditWatcher(threading.Thread):
    """Counts committed audit events and records when each became visible."""

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(
            {
                **settings.kafka_common(),
                "group.id": f"bench-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        self.consumer.subscribe([topic])
        self.seen: list[tuple[float, int]] = []  # (visible at, input timestamp ms)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            # A short timeout: consume() waits for it unless 500 messages came, which would add to latency.
            for message in self.consumer.consume(500, 0.01):
                if message.error() is None:
                    event = orjson.loads(message.value() or b"{}")
                    self.seen.append((time.time(), int(event["input"]["timestamp_ms"])))
        self.consumer.close()

    def wait_for(self, count: int, timeout: float, worker: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            if worker is not None and worker.poll() is not None:
                raise RuntimeError(f"the worker exited with code {worker.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.seen)} of {count} audit events after {timeout}s")
            time.sleep(0.05)


# The settings of every deployment this run made (``_fresh``): one cluster, each its own prefix.
_MADE: list[Settings] = []


def _fresh(base: Settings, tag: str, partitions: int = 4) -> tuple[Settings, Topology]:
    settings = base.model_copy(update={"topic_prefix": f"bench{tag}{uuid.uuid4().hex[:8]}"})
    _MADE.append(settings)
    topology = Topology(settings.topic_prefix)
    create_topics(
        settings.kafka_common(), topology.specs(load_policies(settings.policy_path).latest), partitions=4, replication=1
    )
    return settings, topology


def drop_made_topics() -> int:
    """Deletes the topics this run made; how many. Left behind, a run's few thousand partitions add
    up over runs on one broker, which then runs every rate slow, the peer's most, and at last
    refuses to open more files (docs/benchmarks.md, Findings)."""
    from confluent_kafka.admin import AdminClient

    if not _MADE:
        return 0
    prefixes = tuple(f"{made.topic_prefix}." for made in _MADE)
    admin = AdminClient(_MADE[0].kafka_common())
    _MADE.clear()
    dropped = 0
    try:
        names = [t for t in admin.list_topics(timeout=15).topics if t.startswith(prefixes)]
        for future in admin.delete_topics(names, operation_timeout=60).values() if names else ():
            future.result(timeout=120)
            dropped += 1
    except Exception as exc:  # the figures are measured: a broker that cannot delete loses nothing
        print(f"[bench] the topics this run made were not all deleted ({type(exc).__name__})", file=sys.stderr)
    return dropped


def _clean_lines(count: int, seed: int) -> list[bytes]:
    mix = Mix(invalid=0.0)
    return Generator(seed=seed, mix=mix, sources=("jcom",)).lines_by_source(count)["jcom"]


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), read while it still runs."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _children(pid: int) -> list[int]:
    """The deciding processes of the worker ``pid`` (multiprocessing's spawned children; not its
    data-quality child or the pool's resource tracker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children = [int(child) for child in task.read_text(encoding="ascii").split()]
            found += [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        except OSError:
            continue
    return found


PEER_PYTHON = PROJECT_ROOT / ".venv-peer" / "bin" / "python"


def start_peer(settings: Settings, name: str) -> subprocess.Popen[bytes]:
    """The Quix Streams peer (bench/peer_quix.py) in its own venv."""
    return subprocess.Popen(
        [str(PEER_PYTHON), str(PROJECT_ROOT / "bench" / "peer_quix.py"), settings.topic_prefix],
        env={**os.environ, **settings.worker_env(), "PYTHONPATH": str(PROJECT_ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_unfenced(settings: Settings, name: str, batch_size: int | None) -> subprocess.Popen[bytes]:
    """The faust worker without fencing (bench/unfenced_worker.py), which fencing is measured against."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench.unfenced_worker", name, str(batch_size or settings.batch_size)],
        env={**os.environ, **settings.worker_env(), "PYTHONPATH": str(PROJECT_ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _starter(
    runtime: str, guarantee: Guarantee = Guarantee.EXACTLY_ONCE, batch_size: int | None = None
) -> Callable[[Settings, str], subprocess.Popen[bytes]]:
    if runtime == "quix":
        return start_peer
    if runtime == "faust-unfenced":
        return lambda settings, name: start_unfenced(settings, name, batch_size)
    return lambda settings, name: start_worker(
        settings, name, runtime=runtime, guarantee=guarantee, batch_size=batch_size, quiet=True
    )


def throughput(
    base: Settings,
    *,
    runtime: str,
    guarantee: Guarantee,
    count: int,
    workers: int = 1,
    partitions: int = 4,
    statistics: bool | None = None,
    batch_size: int = 1000,
    policy_path: Path | None = None,
) -> dict[str, Any]:
    """The backlog's rate through ``workers``. With ``statistics`` False the policy's statistics
    tables are taken out (the workers write no contributions); with True the statistics worker
    counts beside them, and the result says how long after the last audit event it had counted
    every contribution. None: the policy as it is, no statistics worker. ``policy_path``: another
    policy than the settings' (its joint users get topics and deliveries)."""
    if policy_path is not None:
        base = base.model_copy(update={"policy_path": policy_path})
    if statistics is False:
        base = base.model_copy(update={"policy_path": _without_statistics(base.policy_path)})
    settings, topology = _fresh(base, "t", partitions=partitions)
    produce_lines(settings, "jcom", _clean_lines(count, 1), schema_version=SCHEMA_VERSION)
    watcher = AuditWatcher(settings, topology.audit)
    watcher.start()
    counting = None
    if statistics:  # running already, as in a deployment: its start-up is not the pipeline's cost
        counting = start_stats(settings, quiet=True)
        _wait_until_assigned(settings, topology.stats_app, counting, timeout=120)
    start = _starter(runtime, guarantee, batch_size)
    started = [start(settings, f"bench-{i}") for i in range(workers)]
    figures: dict[str, Any] = {}
    try:
        for worker in started:
            watcher.wait_for(count, timeout=600, worker=worker)
        rss = max(_peak_rss_mb(worker.pid) for worker in started)
        children = [pid for worker in started for pid in _children(worker.pid)]
        if children:  # its deciding processes (JOINTUSE_DECIDE_PROCESSES), together
            figures["deciding_processes_peak_rss_mb"] = round(sum(_peak_rss_mb(pid) for pid in children))
        if counting is not None:
            counted_at = _all_counted(settings, topology, counting, timeout=300)
            figures["statistics_counted_s_after_last_audit_event"] = round(
                counted_at - max(t for t, _ in watcher.seen), 2
            )
            figures["statistics_worker_peak_rss_mb"] = round(_peak_rss_mb(counting.pid))
    finally:
        for worker in started if counting is None else [*started, counting]:
            stop_worker(worker)
        watcher.stopping.set()
    visible = sorted(t for t, _ in watcher.seen)
    seconds = visible[-1] - visible[0]
    return {"records_per_s": round(count / seconds), "seconds": round(seconds, 2), "peak_rss_mb": round(rss), **figures}


def _without_statistics(policy_path: Path) -> Path:
    """A copy of the policy file without its statistics tables (so no contributions are written)."""
    import tempfile

    import yaml

    policy = yaml.safe_load(policy_path.read_text(encoding="utf-8"))
    policy.pop("statistics", None)
    copy = Path(tempfile.mkdtemp(prefix="jointuse-bench-")) / policy_path.name
    copy.write_text(yaml.safe_dump(policy, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return copy


def _wait_until_assigned(settings: Settings, group: str, process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """Until ``group`` is stable with a partition assigned to a member (``process``'s)."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.kafka_common())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the statistics worker exited with code {process.returncode}")
        (future,) = admin.describe_consumer_groups([group], request_timeout=10).values()
        found = future.result(15)
        if found.state == ConsumerGroupState.STABLE and any(m.assignment.topic_partitions for m in found.members):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the statistics worker had no partition after {timeout} s")


def _all_counted(settings: Settings, topology: Topology, counting: subprocess.Popen[bytes], *, timeout: float) -> float:
    """When the statistics worker's committed offset first passed the last contribution (offsets
    alone: the topic's last offset is a transaction's commit marker, not a contribution)."""
    from confluent_kafka import KafkaError, TopicPartition

    reader = Consumer(
        {
            **settings.kafka_common(),
            "group.id": topology.stats_app,  # only to read its committed offset; never subscribes
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        partition = TopicPartition(topology.stats_contributions, 0)
        _, high = reader.get_watermark_offsets(partition, timeout=10, cached=False)
        reader.assign([TopicPartition(topology.stats_contributions, 0, max(0, high - 100))])
        last = -1
        while True:
            message = reader.poll(5)
            error = message.error() if message is not None else None
            if message is None or (error is not None and error.code() == KafkaError._PARTITION_EOF):
                break
            if message.error() is None:
                last = max(last, message.offset() or 0)
        if last < 0:
            raise RuntimeError("the workers wrote no statistics contribution")
        deadline = time.monotonic() + timeout
        while True:
            (committed,) = reader.committed([partition], timeout=10)
            if committed.offset > last:
                return time.time()
            if counting.poll() is not None:
                raise RuntimeError(f"the statistics worker exited with code {counting.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the statistics worker had not counted every contribution after {timeout} s")
            time.sleep(0.1)
    finally:
        reader.close()


def passthrough(base: Settings, *, count: int) -> dict[str, Any]:
    """The broker and client limit: consume the ingest backlog and produce the same bytes, no processing."""
    from confluent_kafka import Consumer, Producer

    settings, topology = _fresh(base, "p")
    produce_lines(settings, "jcom", _clean_lines(count, 1), schema_version=SCHEMA_VERSION)
    consumer = Consumer(
        {
            **settings.kafka_common(),
            "group.id": f"{settings.topic_prefix}.passthrough",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topology.ingest("jcom")])
    producer = Producer({**settings.kafka_common(), "linger.ms": 5, "enable.idempotence": True})
    moved = 0
    first: float | None = None
    while moved < count:
        batch = consumer.consume(1000, 1.0)
        for message in batch:
            if message.error() is None:
                first = first or time.perf_counter()
                producer.produce(topology.deliver("jcom-insurance"), key=message.key(), value=message.value())
                moved += 1
        producer.poll(0)
    producer.flush(60)
    consumer.commit(asynchronous=False)
    seconds = time.perf_counter() - (first or time.perf_counter())
    consumer.close()
    return {"records_per_s": round(count / seconds), "seconds": round(seconds, 2)}


PACE_SECONDS = 0.002


def latency(
    base: Settings, *, runtime: str, rate: float, seconds: float = 10.0, warmup_seconds: float = 3.0
) -> dict[str, Any]:
    """End-to-end latency at a steady ``rate``: ``warmup_seconds`` at the rate first, then
    ``seconds`` measured. The warm-up's own figures are kept beside (``warmup_*``): a worker's first
    seconds of traffic (first deliveries to each topic, first transactions) are slower."""
    settings, topology = _fresh(base, "l")
    count = int(rate * (warmup_seconds + seconds))
    lines = _clean_lines(count, 2)
    # Encode everything first, so that producing at the target rate costs only the send.
    from streams.policy.engine import Engine
    from streams.serde.governed import governed_version
    from streams.serde.json_form import JsonForm
    from streams.serde.jsonl import Encoded, encode_lines
    from streams.serde.registry import Registry

    classified = governed_version(settings.schema_dir, SCHEMA_VERSION).classified
    registry = Registry(settings.registry_conf())
    topic = topology.ingest("jcom")
    schema_id = registry.register(f"{topic}-value", dict(classified.raw))
    encoded = [
        e
        for e in encode_lines(
            lines,
            engine=Engine(classified, load_policies(settings.policy_path)),
            form=JsonForm(classified),
            codec=registry.codec(schema_id),
            schema_id=schema_id,
        )
        if isinstance(e, Encoded)
    ]
    watcher = AuditWatcher(settings, topology.audit)
    watcher.start()
    worker = _starter(runtime)(settings, "bench-lat")
    client = clients.producer(settings.kafka_common(), linger_ms=0)
    try:
        # Warm-up record: wait until the worker is assigned and has looked up the schema.
        client.produce(topic, key=encoded[0].key, value=encoded[0].value)
        client.flush(10)
        watcher.wait_for(1, timeout=120, worker=worker)
        # Sent every PACE_SECONDS, all that is due by then: a sleep per record cost the generator
        # more of the two cores than the worker it measures could spare at several thousand a second.
        started = time.perf_counter()
        measured_from_ms = (time.time() + warmup_seconds) * 1000
        sent = 1
        while sent < len(encoded):
            due = min(len(encoded), 1 + int((time.perf_counter() - started) * rate))
            for item in encoded[sent:due]:
                client.produce(topic, key=item.key, value=item.value)
            sent = max(sent, due)
            client.poll(0)
            time.sleep(PACE_SECONDS)
        client.flush(30)
        watcher.wait_for(len(encoded), timeout=300, worker=worker)
    finally:
        stop_worker(worker)
        watcher.stopping.set()
    warmup = sorted(visible * 1000 - at for visible, at in watcher.seen[1:] if at < measured_from_ms)
    latencies = sorted(visible * 1000 - at for visible, at in watcher.seen[1:] if at >= measured_from_ms)
    return {
        "rate_records_per_s": round(rate),
        "records": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": _percentile(latencies, 0.99),
        "warmup_records": len(warmup),
        "warmup_p99_ms": _percentile(warmup, 0.99),
    }


def _percentile(ordered: list[float], fraction: float) -> float | None:
    return round(ordered[max(0, int(len(ordered) * fraction) - 1)], 1) if ordered else None


def statistics_cost(base: Settings, *, count: int, repetitions: int) -> dict[str, Any]:
    """faust, exactly once: the policy's statistics written and counted (the statistics worker
    beside the worker, on the same two cores) against the same policy without statistics. The two
    alternate, so that drift on the machine hits both alike."""
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    runs_each = f"{repetitions} runs each of {count:,} records"
    with stage(f"pipeline: faust exactly once, statistics off and on, alternating ({runs_each})"):
        for _ in range(repetitions):
            for mode in ("off", "on"):
                runs[mode].append(
                    throughput(
                        base, runtime="faust", guarantee=Guarantee.EXACTLY_ONCE, count=count, statistics=mode == "on"
                    )
                )
    return {f"faust_exactly_once_statistics_{mode}": _median(results) for mode, results in runs.items()}


def plaintext(base: Settings) -> Settings:
    """``base`` through the local cluster's plaintext SASL listener (``infra/local.sh env-plaintext``):
    the same broker, credentials and topics, without TLS."""
    exported = subprocess.run(
        [str(PROJECT_ROOT / "infra" / "local.sh"), "env-plaintext"], capture_output=True, text=True, check=True
    ).stdout
    found = dict(re.findall(r"JOINTUSE_([A-Z_]+)=(\S+)", exported))  # the last assignment of each wins
    return base.model_copy(
        update={"bootstrap_servers": found["BOOTSTRAP_SERVERS"], "security_protocol": found["SECURITY_PROTOCOL"]}
    )


def tls_cost(base: Settings, *, count: int, repetitions: int) -> dict[str, Any]:
    """Each runtime, exactly once, over TLS (SCRAM over TLS, as deployed) against the same broker's
    plaintext SASL listener. The two alternate, so that drift on the machine hits both alike."""
    over = {"tls": base, "plaintext": plaintext(base)}
    results: dict[str, Any] = {}
    for runtime in ("faust", "confluent"):
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in over}
        with stage(f"pipeline: {runtime} exactly once, TLS and plaintext alternating ({repetitions} runs each)"):
            for _ in range(repetitions):
                for mode, settings in over.items():
                    runs[mode].append(
                        throughput(settings, runtime=runtime, guarantee=Guarantee.EXACTLY_ONCE, count=count)
                    )
        results.update({f"{runtime}_exactly_once_{mode}": _median(found) for mode, found in runs.items()})
    return results


FENCING_MODES: dict[str, dict[str, Any]] = {
    # no fencing: offsets sent with the group id only (TxnOffsetCommit v0)
    "unfenced": {"runtime": "faust-unfenced"},
    # the shipped worker: offsets sent with the member id and generation (KIP-447)
    "fenced": {"runtime": "faust"},
    # what one transactional producer per input partition would do on 2 partitions: every batch
    # split into one transaction per partition, i.e. half the records per transaction
    "fenced_one_transaction_per_partition": {"runtime": "faust", "batch_size": 500},
}


def fencing_cost(base: Settings, *, count: int, repetitions: int) -> dict[str, Any]:
    """faust, exactly once, 2-partition topics: the fencing design against the worker without it
    and against the per-partition design it was chosen over. The modes alternate, so that drift
    on the machine hits all alike."""
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in FENCING_MODES}
    with stage(f"fencing: faust exactly once, {len(FENCING_MODES)} designs alternating ({repetitions} runs each)"):
        for _ in range(repetitions):
            for mode, options in FENCING_MODES.items():
                runs[mode].append(
                    throughput(
                        base,
                        runtime=str(options["runtime"]),
                        guarantee=Guarantee.EXACTLY_ONCE,
                        count=count,
                        partitions=2,
                        batch_size=int(options.get("batch_size", 1000)),
                    )
                )
    return {f"faust_{mode}": _median(results) for mode, results in runs.items()}


def median_of(runs: int, measure: Any) -> dict[str, Any]:
    """The run with the median throughput of ``runs`` repetitions (all rates kept for the record)."""
    return _median([measure() for _ in range(runs)])


def latency_median_of(runs: int, measure: Any) -> dict[str, Any]:
    """The latency run with the median p99 of ``runs`` (every run's p99 kept for the record): one
    run's p99 is its slowest 1 %, a few transactions, and varies by half between runs."""
    ordered = sorted((measure() for _ in range(runs)), key=lambda r: r["p99_ms"])
    middle = dict(ordered[len(ordered) // 2])
    middle["all_p99_ms"] = [r["p99_ms"] for r in ordered]
    return middle


def _median(results: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(results, key=lambda r: r["records_per_s"])
    middle = dict(ordered[len(ordered) // 2])
    middle["all_records_per_s"] = [r["records_per_s"] for r in ordered]
    return middle


def run(
    count: int = 20_000, repetitions: int = 3, runtimes: tuple[str, ...] = ("faust", "confluent", "quix")
) -> dict[str, Any]:
    base = load_settings().model_copy(update={"metrics_port": 0})  # several workers at once: free ports
    runs = f"{repetitions} runs of {count:,} records"
    with stage(f"pipeline: passthrough baseline ({runs})"):
        results: dict[str, Any] = {"passthrough": median_of(repetitions, lambda: passthrough(base, count=count))}
    for runtime in [r for r in ("faust", "confluent") if r in runtimes]:
        for guarantee in Guarantee:
            with stage(f"pipeline: {runtime} {guarantee} ({runs})"):
                results[f"{runtime}_{guarantee}"] = median_of(
                    repetitions, lambda r=runtime, g=guarantee: throughput(base, runtime=r, guarantee=g, count=count)
                )
        with stage(f"pipeline: {runtime} latency at half its rate ({repetitions} runs)"):
            results[f"{runtime}_latency_at_half_rate"] = latency_median_of(
                repetitions,
                lambda r=runtime: latency(base, runtime=r, rate=results[f"{r}_exactly_once"]["records_per_s"] / 2),
            )
    if PEER_PYTHON.exists() and "quix" in runtimes:
        with stage(f"pipeline: Quix Streams peer, exactly once ({runs})"):
            results["quix_exactly_once"] = median_of(
                repetitions, lambda: throughput(base, runtime="quix", guarantee=Guarantee.EXACTLY_ONCE, count=count)
            )
        with stage(f"pipeline: Quix Streams peer, latency at half its rate ({repetitions} runs)"):
            results["quix_latency_at_half_rate"] = latency_median_of(
                repetitions,
                lambda: latency(base, runtime="quix", rate=results["quix_exactly_once"]["records_per_s"] / 2),
            )
    if "faust" in runtimes:
        results.update(statistics_cost(base, count=count, repetitions=repetitions))
    for workers in (1, 2) if "faust" in runtimes else ():
        with stage(f"pipeline: faust scale-out, {workers} worker(s) on 2 partitions ({runs})"):
            results[f"faust_scale_out_{workers}_workers_2_partitions"] = median_of(
                repetitions,
                lambda w=workers: throughput(
                    base, runtime="faust", guarantee=Guarantee.EXACTLY_ONCE, count=count, workers=w, partitions=2
                ),
            )
    return results


def joint_users_through_the_broker(
    count: int = 20_000, repetitions: int = 3, joint_users: tuple[int, ...] = (2, 10), decide_processes: int = 2
) -> dict[str, Any]:
    """Both runtimes and the Quix peer, exactly once, with the shipped notice (2 joint users: one
    delivery a record) and with 8 more group companies (10: nine deliveries a record, so 10 messages
    per input for the worker with its audit event, 9 for the peer; a transaction's statistics
    contributions are one message). Rounds alternate
    the three, so the machine's drift falls on all alike; the median of each counts."""
    from bench.joint_users import policy_file_with

    base = load_settings().model_copy(update={"metrics_port": 0})
    # Each runtime deciding itself and with deciding processes (JOINTUSE_DECIDE_PROCESSES): named
    # "<runtime>" and "<runtime>_deciding<n>".
    workers = [(runtime, processes) for processes in (0, decide_processes) for runtime in ("faust", "confluent")]
    named = {
        (f"{runtime}_deciding{processes}" if processes else runtime): (runtime, processes)
        for runtime, processes in workers
    }
    if PEER_PYTHON.exists():
        named["quix"] = ("quix", 0)
    results: dict[str, Any] = {"decide_processes": decide_processes}
    for users in joint_users:
        policy = policy_file_with(users)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in named}
        for round_ in range(1, repetitions + 1):
            for name, (runtime, processes) in named.items():
                with stage(f"joint users through the broker: {users}, {name}, round {round_} of {repetitions}"):
                    runs[name].append(
                        throughput(
                            base.model_copy(update={"decide_processes": processes}),
                            runtime=runtime,
                            guarantee=Guarantee.EXACTLY_ONCE,
                            count=count,
                            policy_path=policy,
                        )
                    )
        for name, measured in runs.items():
            results[f"{name}_{users}_joint_users"] = _median(measured)
        peer = results.get(f"quix_{users}_joint_users", {}).get("records_per_s")
        for name in named:
            if peer and name != "quix":
                rate = results[f"{name}_{users}_joint_users"]["records_per_s"]
                results[f"{name}_over_peer_{users}_joint_users"] = round(rate / peer, 2)
    return results


BATCH_WAITS_MS = (20, 50, 100)


def batch_wait(rate: float = 2000.0, waits: tuple[int, ...] = BATCH_WAITS_MS) -> dict[str, Any]:
    """Latency at a steady rate (half of what a worker sustains here) for each JOINTUSE_MAX_BATCH_WAIT_MS
    on both runtimes: what the default is chosen by. Shorter waits make more, smaller transactions,
    whose fixed cost (offsets to the group coordinator, the commit's round trips, on the same two
    cores as the broker) outweighs the wait they save."""
    base = load_settings().model_copy(update={"metrics_port": 0})
    results: dict[str, Any] = {"rate_records_per_s": round(rate)}
    for runtime in ("confluent", "faust"):
        for wait in waits:
            with stage(f"batch wait: {runtime}, {wait} ms, {rate:,.0f} records/s"):
                measured = latency(base.model_copy(update={"max_batch_wait_ms": wait}), runtime=runtime, rate=rate)
            results[f"{runtime}_{wait}ms"] = {"p50_ms": measured["p50_ms"], "p99_ms": measured["p99_ms"]}
    return results
