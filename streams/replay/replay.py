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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from streams.errors import ClusterError, ConfigError, FatalError
from streams.kafka import clients
from streams.kafka.admin import create_topics
from streams.kafka.reader import PartitionRange, RangeSpec, read_assigned, reader, resolve
from streams.messages import InMessage, Outcome, OutMessage
from streams.policy.decision import Status
from streams.policy.loader import PolicySet
from streams.policy.model import Policy
from streams.rights.view import RightsView
from streams.runtime.confluent import ConfluentWriter, in_message
from streams.runtime.loop import BatchLoop, BatchProcessor
from streams.runtime.transaction import ErrorKind, Offsets
from streams.serde.governed import governed_version
from streams.serde.json_form import JsonForm
from streams.serde.registry import Registry
from streams.settings import Settings
from streams.topology import TopicSpec, Topology
from streams.worker.parts import audit_sealer, pipeline_processor

H_RECIPIENT = "jointuse-recipient"
FILE_TOPIC = "file"  # the file target's lines, as out messages: the file transport ignores the topic
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
            replay_id=self.id,
        )
        self.stats = ReplayStats(self.id)

    def run(
        self,
        *,
        on_plan: Callable[[int], None] = lambda total: None,
        on_progress: Callable[[int], None] = lambda done: None,
    ) -> ReplayStats:
        """The range through the core's BatchLoop: one transaction per batch (outputs and the
        replay's position), its error policy, and a FatalError ends the run (run it again to
        resume from the last committed batch)."""
        started = time.perf_counter()
        self.rights.start()
        consumer = reader(self.settings.kafka_common(), group_id=self.name)
        try:
            ranges = resolve(consumer, self.spec)
            transport: _FileTransport | _TopicTransport
            if self.target.kind == "file":
                transport = _FileTransport(self)
                processor: BatchProcessor[Outcome] = _Lines(self.processor, transport.form, self.id)
            else:
                transport = _TopicTransport(self, consumer, ranges)
                processor = self.processor if self.target.kind == "redeliver" else _Staged(self)
            positions = transport.positions()
            self.stats.resumed = bool(positions)
            self.stats.planned = sum(max(0, r.end - max(r.start, positions.get(r.partition, r.start))) for r in ranges)
            on_plan(self.stats.planned)
            transport.batches = read_assigned(consumer, self.spec, ranges, positions, self.batch_size, on_progress)
            # Redelivered audit events extend a chain of their own, named like the replay's producer.
            sealer = audit_sealer(self.settings, self.name) if self.target.kind == "redeliver" else None
            loop = BatchLoop(transport, processor, sealer=sealer, pack=self.processor.pack_contributions)
            loop.on_committed.append(self._count)
            try:
                asyncio.run(loop.run())
            except FatalError as exc:
                raise ClusterError(f"the replay stopped ({exc}); run it again to resume") from exc
            transport.finish()
        finally:
            consumer.close()
            self.rights.stop()
            self.stats.seconds = time.perf_counter() - started
        return self.stats

    def _count(self, inputs: Sequence[InMessage], outcomes: Sequence[Outcome]) -> None:
        self.stats.read += len(inputs)
        for outcome in outcomes:
            self.stats.by_status[outcome.status.value] += 1
            self.stats.written += len(outcome.messages)


class _Staged:
    """The ``topic`` target: every delivery into the staging topic, its recipient in a header;
    nothing else (no dead letters, no audit)."""

    def __init__(self, replayer: Replayer) -> None:
        self.inner = replayer.processor
        self.topology = replayer.topology
        self.staging = str(replayer.target.topic)

    def process(self, message: InMessage) -> Outcome:
        outcome = self.inner.process(message)
        staged = []
        for recipient in outcome.deliveries:
            delivery_topic = self.topology.deliver(recipient)
            for out in outcome.messages:
                if out.topic == delivery_topic:
                    headers = [*out.headers, (H_RECIPIENT, recipient.encode())]
                    staged.append(OutMessage(self.staging, out.key, out.value, headers))
        return outcome._replace(messages=tuple(staged))


class _Lines:
    """The ``file`` target: one JSON line per input, with the decision and the delivered projections
    (the line is the outcome's one message; the file transport appends it)."""

    def __init__(self, inner: BatchProcessor[Outcome], form: JsonForm, replay_id: str) -> None:
        self.inner = inner
        self.form = form
        self.replay_id = replay_id

    def process(self, message: InMessage) -> Outcome:
        outcome = self.inner.process(message)
        return outcome._replace(messages=(OutMessage(FILE_TOPIC, None, self._line(message, outcome), []),))

    def _line(self, message: InMessage, outcome: Outcome) -> bytes:
        decision = outcome.decision
        deliveries: dict[str, Any] = {}
        if decision is not None and outcome.status is Status.SHARED:
            deliveries = {
                r: {"purposes": list(d.purposes), "items": list(d.items), "record": self.form.to_json(dict(d.record))}
                for r, d in decision.deliveries.items()
            }
        row = {
            "replay_id": self.replay_id,
            "partition": message.partition,
            "offset": message.offset,
            "key": message.key.decode("utf-8", "replace") if message.key is not None else None,
            "status": outcome.status.value,
            "reason": outcome.reason,
            "policy_version": decision.policy_version if decision else None,
            "deliveries": deliveries,
        }
        return (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


class _RangeSource:
    """The fetch side of a replay: the range's batches, each read once. It does not seek: an aborted
    batch is written again in a new transaction (the loop's policy for such transports)."""

    can_rewind = False
    batches: Iterator[list[Message]] = iter(())

    async def fetch(self) -> Sequence[InMessage] | None:
        batch = next(self.batches, None)
        return None if batch is None else [in_message(m) for m in batch]

    async def rewind(self, positions: Offsets) -> None:
        raise NotImplementedError("a replay reads its range once: the loop writes an aborted batch again")

    def assigned(self) -> set[tuple[str, int]]:
        return set()  # not needed: nothing is rewound

    def membership(self) -> None:
        return None  # a replay's consumer is assigned its ranges: no group to move on


class _TopicTransport(_RangeSource, ConfluentWriter):
    """Kafka targets: the outputs and the replay's position (its consumer group's offsets) in one
    transaction, under a transactional id per replay, so an interrupted run's open transaction is
    aborted when the replay runs again."""

    def __init__(self, replayer: Replayer, consumer: Consumer, ranges: list[PartitionRange]) -> None:
        self.topic = replayer.spec.topic
        self.ranges = ranges
        if replayer.target.kind == "topic":
            # A staging topic is created on first use, with as many partitions as the source.
            staging = TopicSpec(str(replayer.target.topic), {"retention.ms": str(7 * 86_400_000)})
            create_topics(replayer.settings.kafka_common(), [staging], partitions=len(ranges), replication=-1)
        kafka = replayer.settings.kafka_common()
        super().__init__(lambda: clients.producer(kafka, transactional_id=replayer.name), consumer, transactional=True)

    def positions(self) -> dict[int, int]:
        partitions = [TopicPartition(self.topic, r.partition) for r in self.ranges]
        try:
            committed = self.consumer.committed(partitions, timeout=30)
        except KafkaException as exc:
            raise ClusterError(f"cannot read the replay's position ({exc.args[0]})") from exc
        return {tp.partition: tp.offset for tp in committed if tp.offset >= 0}

    def finish(self) -> None:
        """Nothing to record: the committed offsets say the range is done."""


class _FileTransport(_RangeSource):
    """The ``file`` target, with the steps of a transaction: lines are appended, and a batch is
    committed when the file is synced and the checkpoint beside it (offsets and the file's length)
    replaced; an aborted batch's lines are truncated."""

    transactional = True

    def __init__(self, replayer: Replayer) -> None:
        assert replayer.target.path is not None
        self.replay_id = replayer.id
        self.path = replayer.target.path
        self.checkpoint = self.path.with_name(self.path.name + ".checkpoint.json")
        self.form = JsonForm(governed_version(replayer.settings.schema_dir).classified)
        self.offsets: dict[int, int] = {}
        self.length = 0
        self._pending: dict[int, int] = {}

    def positions(self) -> dict[int, int]:
        if self.checkpoint.exists():
            state = json.loads(self.checkpoint.read_text(encoding="utf-8"))
            if state.get("replay_id") != self.replay_id:
                raise ConfigError(f"{self.checkpoint} belongs to another replay ({state.get('replay_id')})")
            self.offsets = {int(p): int(o) for p, o in state["offsets"].items()}
            self.length = int(state["bytes"])
            self._truncate()  # lines written after the last checkpoint are written again
            return dict(self.offsets)
        if self.path.exists() and self.path.stat().st_size > 0:
            raise ConfigError(f"{self.path} exists and has no checkpoint of this replay; choose another file")
        self.path.touch()
        return {}

    async def begin(self) -> None:
        self._pending = {}

    async def write(self, messages: Sequence[OutMessage]) -> None:
        with self.path.open("ab") as handle:
            handle.write(b"".join(m.value or b"" for m in messages))

    async def send_offsets(self, offsets: Offsets, membership: object) -> None:
        self._pending = {partition: offset for (_, partition), offset in offsets.items()}

    async def commit(self) -> None:
        with self.path.open("ab") as handle:
            os.fsync(handle.fileno())
            self.length = handle.tell()
        self.offsets.update(self._pending)
        self._save(done=False)

    async def abort(self) -> None:
        self._truncate()

    async def renew(self) -> None:
        raise RuntimeError("a file target has no producer to replace")  # never asked: errors are fatal

    def classify(self, error: BaseException) -> ErrorKind:
        return ErrorKind.FATAL  # a file that cannot be written (disk full, permissions) stops the run

    def finish(self) -> None:
        self._save(done=True)

    def _truncate(self) -> None:
        with self.path.open("r+b") as handle:
            handle.truncate(self.length)

    def _save(self, *, done: bool) -> None:
        state = {"replay_id": self.replay_id, "offsets": self.offsets, "bytes": self.length, "done": done}
        temporary = self.checkpoint.with_suffix(".tmp")
        temporary.write_text(json.dumps(state), encoding="utf-8")
        os.replace(temporary, self.checkpoint)


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
