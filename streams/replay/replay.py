"""``jointuse replay``: stored ingest records through the worker's engine, under a chosen policy.

Targets:
- ``redeliver``: the normal delivery topics, dead letters and audit, as the worker writes them;
- ``topic``: every delivery into one topic (a staging area), with a ``jointuse-recipient`` header;
- ``file``: one JSON line per record with the decision and the delivered projections.

A replay has an id (``jointuse-replay-id`` header, and ``replay_id`` in audit events), derived from
its parameters unless given. Kafka targets commit outputs and the replay's position in one
transaction (transactional id and consumer group named after the replay): running the same replay
again, or after a Ctrl-C or a crash, continues where it stopped and never writes a record twice.
The file target keeps a checkpoint beside the file (offsets and the file's length), truncates
whatever was written after the last checkpoint, and continues.
Stop-of-use and erasure requests apply to replays exactly as to the worker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from streams.errors import ClusterError, ConfigError
from streams.kafka import clients
from streams.kafka.admin import create_topics
from streams.kafka.reader import PartitionRange, RangeSpec, read_assigned, reader, resolve
from streams.messages import InMessage, Outcome, OutMessage
from streams.policy.classification import load_schema
from streams.policy.decision import Status
from streams.policy.loader import PolicySet
from streams.policy.model import Policy
from streams.rights.view import RightsView
from streams.runtime.confluent import ConfluentWriter, in_message
from streams.runtime.loop import Aborted, ErrorPolicy, FatalError, transact
from streams.runtime.wiring import pipeline_processor
from streams.serde.json_form import JsonForm
from streams.serde.registry import Registry
from streams.settings import Settings
from streams.topology import TopicSpec, Topology

H_REPLAY_ID = "jointuse-replay-id"
H_RECIPIENT = "jointuse-recipient"
TargetKind = Literal["redeliver", "topic", "file"]


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    topic: str | None = None
    path: Path | None = None

    def describe(self) -> str:
        return {"redeliver": "redeliver", "topic": f"topic:{self.topic}", "file": f"file:{self.path}"}[self.kind]


def replay_id_of(spec: RangeSpec, policy: Policy, target: Target) -> str:
    canonical = json.dumps(
        {"range": spec.canonical(), "policy": policy.version, "target": target.describe()}, sort_keys=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class ReplayStats:
    replay_id: str
    planned: int = 0  # records in the range still to do when this run started
    read: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in Status})
    written: int = 0
    seconds: float = 0.0
    resumed: bool = False


class Replayer:
    def __init__(
        self,
        settings: Settings,
        spec: RangeSpec,
        policy: Policy,
        policies: PolicySet,
        target: Target,
        *,
        replay_id: str | None = None,
        batch_size: int = 500,
    ) -> None:
        topology = Topology(settings.topic_prefix)
        if topology.company_of_ingest(spec.topic) is None:
            raise ConfigError(f"{spec.topic} is not an ingest topic of prefix {settings.topic_prefix}")
        if target.kind == "topic" and not target.topic:
            raise ConfigError("--to-topic needs a topic name")
        self.settings = settings
        self.spec = spec
        self.policy = policy
        self.target = target
        self.topology = topology
        self.batch_size = batch_size
        self.id = replay_id or replay_id_of(spec, policy, target)
        self.name = f"{settings.topic_prefix}.pipeline-replay.{self.id}"
        self.rights = RightsView(settings.kafka_common(), topology.rights, group_id=f"{self.name}.rights")
        self.processor = pipeline_processor(
            settings,
            policies,
            Registry(settings.registry_conf()),
            policy=policy,
            worker_id=f"replay-{self.id}",
            is_stopped=self.rights.is_stopped,
            extra_headers=[(H_REPLAY_ID, self.id.encode())],
            audit_extra={"replay_id": self.id},
        )
        self.stats = ReplayStats(self.id)

    def run(
        self,
        *,
        on_plan: Callable[[int], None] = lambda total: None,
        on_progress: Callable[[int], None] = lambda done: None,
    ) -> ReplayStats:
        started = time.perf_counter()
        self.rights.start()
        consumer = reader(self.settings.kafka_common(), group_id=self.name)
        try:
            ranges = resolve(consumer, self.spec)
            if self.target.kind == "file":
                sink: _Sink = _FileSink(self, ranges)
            else:
                sink = _KafkaSink(self, consumer, ranges)
            positions = sink.positions()
            self.stats.resumed = bool(positions)
            self.stats.planned = sum(max(0, r.end - max(r.start, positions.get(r.partition, r.start))) for r in ranges)
            on_plan(self.stats.planned)
            for batch in read_assigned(consumer, self.spec, ranges, positions, self.batch_size, on_progress):
                inputs = [in_message(m) for m in batch]
                outcomes = [self.processor.process(m) for m in inputs]
                self.stats.written += sink.write(inputs, outcomes, _next_offsets(batch))
                self.stats.read += len(inputs)
                for outcome in outcomes:
                    self.stats.by_status[outcome.status.value] += 1
            sink.finish()
        finally:
            consumer.close()
            self.rights.stop()
            self.stats.seconds = time.perf_counter() - started
        return self.stats


class _Sink:
    def positions(self) -> dict[int, int]:
        raise NotImplementedError

    def write(self, inputs: list[InMessage], outcomes: list[Outcome], offsets: dict[int, int]) -> int:
        raise NotImplementedError

    def finish(self) -> None:
        """Records that the whole range is done (nothing for Kafka: the offsets say it)."""


def _next_offsets(batch: list[Message]) -> dict[int, int]:
    out: dict[int, int] = {}
    for message in batch:
        partition = message.partition() or 0
        out[partition] = max(out.get(partition, 0), (message.offset() or 0) + 1)
    return out


class _KafkaSink(_Sink):
    def __init__(self, replayer: Replayer, consumer: Consumer, ranges: list[PartitionRange]) -> None:
        self.replayer = replayer
        self.consumer = consumer
        self.ranges = ranges
        self.topic = replayer.spec.topic
        if replayer.target.kind == "topic":
            # A staging topic is created on first use, with as many partitions as the source.
            staging = TopicSpec(str(replayer.target.topic), {"retention.ms": str(7 * 86_400_000)})
            create_topics(replayer.settings.kafka_common(), [staging], partitions=len(ranges), replication=-1)
        # A stable transactional id per replay: an interrupted run's open transaction is aborted here.
        self.writer = ConfluentWriter(
            clients.producer(replayer.settings.kafka_common(), transactional_id=replayer.name),
            consumer,
            transactional=True,
        )

    def positions(self) -> dict[int, int]:
        partitions = [TopicPartition(self.topic, r.partition) for r in self.ranges]
        try:
            committed = self.consumer.committed(partitions, timeout=30)
        except KafkaException as exc:
            raise ClusterError(f"cannot read the replay's position ({exc.args[0]})") from exc
        return {tp.partition: tp.offset for tp in committed if tp.offset >= 0}

    def _messages(self, outcomes: list[Outcome]) -> list[OutMessage]:
        if self.replayer.target.kind == "redeliver":
            return [m for o in outcomes for m in o.messages]
        topology, staging = self.replayer.topology, str(self.replayer.target.topic)
        out = []
        for outcome in outcomes:
            for recipient in outcome.deliveries:
                delivery_topic = topology.deliver(recipient)
                for message in outcome.messages:
                    if message.topic == delivery_topic:
                        headers = [*message.headers, (H_RECIPIENT, recipient.encode())]
                        out.append(OutMessage(staging, message.key, message.value, headers))
        return out

    def write(self, inputs: list[InMessage], outcomes: list[Outcome], offsets: dict[int, int]) -> int:
        messages = self._messages(outcomes)
        commit = {(self.topic, partition): offset for partition, offset in offsets.items()}
        try:
            asyncio.run(transact(self.writer, messages, commit, ErrorPolicy()))
        except (Aborted, FatalError) as exc:
            # The run stops; the next run resumes from the last committed batch.
            raise ClusterError(f"the replay's transaction failed ({exc}); run it again to resume") from exc
        return len(messages)


class _FileSink(_Sink):
    def __init__(self, replayer: Replayer, ranges: list[PartitionRange]) -> None:
        assert replayer.target.path is not None
        self.replayer = replayer
        self.path = replayer.target.path
        self.checkpoint = self.path.with_name(self.path.name + ".checkpoint.json")
        self.form = JsonForm(load_schema(replayer.settings.schema_dir / "customer_record.v1.avsc"))
        self.offsets: dict[int, int] = {}
        self.length = 0

    def positions(self) -> dict[int, int]:
        if self.checkpoint.exists():
            state = json.loads(self.checkpoint.read_text(encoding="utf-8"))
            if state.get("replay_id") != self.replayer.id:
                raise ConfigError(f"{self.checkpoint} belongs to another replay ({state.get('replay_id')})")
            self.offsets = {int(p): int(o) for p, o in state["offsets"].items()}
            self.length = int(state["bytes"])
            with self.path.open("r+b") as handle:
                handle.truncate(self.length)  # lines written after the last checkpoint are written again
            return dict(self.offsets)
        if self.path.exists() and self.path.stat().st_size > 0:
            raise ConfigError(f"{self.path} exists and has no checkpoint of this replay; choose another file")
        self.path.touch()
        return {}

    def write(self, inputs: list[InMessage], outcomes: list[Outcome], offsets: dict[int, int]) -> int:
        lines = [self._line(m, o) for m, o in zip(inputs, outcomes, strict=True)]
        data = b"".join(lines)
        with self.path.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self.length += len(data)
        self.offsets.update(offsets)
        self._save(done=False)
        return len(lines)

    def finish(self) -> None:
        self._save(done=True)

    def _save(self, *, done: bool) -> None:
        state = {"replay_id": self.replayer.id, "offsets": self.offsets, "bytes": self.length, "done": done}
        temporary = self.checkpoint.with_suffix(".tmp")
        temporary.write_text(json.dumps(state), encoding="utf-8")
        os.replace(temporary, self.checkpoint)

    def _line(self, message: InMessage, outcome: Outcome) -> bytes:
        decision = outcome.decision
        deliveries: dict[str, Any] = {}
        if decision is not None and outcome.status is Status.SHARED:
            deliveries = {
                r: {"purposes": list(d.purposes), "items": list(d.items), "record": self.form.to_json(dict(d.record))}
                for r, d in decision.deliveries.items()
            }
        row = {
            "replay_id": self.replayer.id,
            "partition": message.partition,
            "offset": message.offset,
            "key": message.key.decode("utf-8", "replace") if message.key is not None else None,
            "status": outcome.status.value,
            "reason": outcome.reason,
            "policy_version": decision.policy_version if decision else None,
            "deliveries": deliveries,
        }
        return (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def parse_time(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError("times must be ISO 8601, e.g. 2026-06-01T00:00:00+09:00") from exc
    if moment.tzinfo is None:
        raise ConfigError("times must carry a UTC offset, e.g. 2026-06-01T00:00:00+09:00")
    return moment
