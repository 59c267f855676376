"""The parts of a worker, each built from the settings (every runtime, replay and dry run builds
them here, so they are the same everywhere)."""

from __future__ import annotations

import datetime as dt
import gc
import logging
import signal
import socket
from collections.abc import Callable
from types import FrameType

from prometheus_client import CollectorRegistry

from streams.audit.sealer import AuditSealer, recover_chain, signing_key
from streams.errors import ConfigError
from streams.kafka.reader import reader, topic_partitions
from streams.messages import H_REPLAY_ID, Run
from streams.policy.loader import PolicySet
from streams.policy.model import Policy
from streams.processors.ingest import Deciding, Processor
from streams.quality.monitor import QualityMonitor
from streams.rights.erasure import RightsProcessor
from streams.rights.index_client import SubjectIndex
from streams.rights.lookups import index_lookup
from streams.rights.view import RightsView
from streams.runtime.held import HeldMessages
from streams.serde.governed import GovernedSchemas, governed_version
from streams.serde.registry import Registry
from streams.settings import Settings
from streams.topology import Topology

log = logging.getLogger("jointuse.worker")


def default_worker_id() -> str:
    return socket.gethostname().split(".")[0] + "-0"


def ingest_topics(settings: Settings, policies: PolicySet) -> list[str]:
    """The ingest topic of every joint user of every policy version."""
    topology = Topology(settings.topic_prefix)
    return sorted({topology.ingest(u.id) for p in policies.versions for u in p.joint_users})


def pipeline_processor(
    settings: Settings,
    policies: PolicySet,
    registry: Registry,
    *,
    is_stopped: Callable[[str, str], bool],
    worker_id: str = "",
    policy: Policy | None = None,
    replay_id: str | None = None,
) -> Processor:
    """The ingest processor as every runtime, replay and dry run builds it: governed schemas from
    ``JOINTUSE_SCHEMA_DIR``, pseudonyms under the deployment's key, the pipeline's clock skew.
    ``policy`` decides every record under one version. A replay (``replay_id``) names itself in
    every audit event and on every output, and redoes joint use only: it never provides to the
    insurer's channels again (a claim file sent twice is a second provision, with its own record)."""
    run = Run(
        Topology(settings.topic_prefix),
        settings.subject_keys(),
        worker_id=worker_id,
        replay_id=replay_id,
        extra_headers=((H_REPLAY_ID, replay_id.encode()),) if replay_id is not None else (),
    )
    deciding = Deciding(
        policies,
        policy=policy,
        max_clock_skew=dt.timedelta(seconds=settings.max_clock_skew_seconds),
        provide_channels=replay_id is None,
    )
    governed = GovernedSchemas.load(settings.schema_dir)
    return Processor(run, deciding, governed, registry, is_stopped=is_stopped)


def rights_view(settings: Settings) -> RightsView:
    topic = Topology(settings.topic_prefix).rights
    return RightsView(settings.kafka_common(), topic, group_id=f"{settings.topic_prefix}.pipeline.rights-view")


def erasure_delay(settings: Settings) -> HeldMessages:
    """What the erasure loop holds each rights request in for the grace (while it keeps polling)."""
    return HeldMessages(int(settings.erasure_grace_seconds * 1000))


def rights_processor(settings: Settings, held: HeldMessages) -> RightsProcessor:
    topology = Topology(settings.topic_prefix)
    return RightsProcessor(
        topology=topology,
        rows=index_lookup(SubjectIndex.of(settings), wait_seconds=settings.index_wait_seconds),
        subjects=settings.subject_keys(),
        superseded=held.has_later,
    )


def audit_sealer(settings: Settings, writer: str) -> AuditSealer:
    """The audit chain of ``writer`` (a transactional id: one producer at a time), recovered from
    what it last committed, with the deployment's signing key."""
    if settings.audit_key_file is None:
        raise ConfigError("no audit signing key: set JOINTUSE_AUDIT_KEY_FILE (infra/local.sh env sets the local one)")
    key = signing_key(settings.audit_key_file)
    topology = Topology(settings.topic_prefix)
    kafka = settings.kafka_common()
    group = f"{settings.topic_prefix}.pipeline-audit-recovery"
    consumer = reader(kafka, group_id=group)
    try:
        partitions = len(topic_partitions(consumer, topology.audit))
    finally:
        consumer.close()
    chain = recover_chain(
        kafka,
        writer,
        audit_topic=topology.audit,
        checkpoints_topic=topology.audit_checkpoints,
        key=key.public_key(),
        group_id=group,
    )
    return AuditSealer(
        chain,
        audit_topic=topology.audit,
        partitions=partitions,
        checkpoints_topic=topology.audit_checkpoints,
        key=key,
        every_events=settings.audit_checkpoint_events,
        every_seconds=settings.audit_checkpoint_seconds,
    )


def quality_monitor(settings: Settings, registry: CollectorRegistry) -> QualityMonitor:
    """The in-worker sampler, rendering deliveries with the latest governed version (older records
    read with it too: later versions only add optional fields)."""
    latest = governed_version(settings.schema_dir)
    return QualityMonitor(
        registry,
        schema_path=latest.path or settings.schema_dir / f"{latest.name}.avsc",
        suites_dir=settings.dq_suites_dir,
        sample_rate=settings.dq_sample_rate,
        batch_size=settings.dq_batch_size,
    )


# Net container allocations between young collections (Python's default: 700), see ``settle_heap``.
# Not collecting at all is faster still, but would never free a cycle (docs/benchmarks.md, Findings).
YOUNG_COLLECTION_AFTER = 50_000


def settle_heap() -> None:
    """Called once a worker has built everything, right before its loop starts: what exists now
    (modules, schemas, compiled codecs and policies) lives as long as the process, so it leaves the
    garbage collector's generations. Full collections would otherwise walk all of it again and
    again, because every batch in flight outlives a young collection, and each takes tens of
    milliseconds (docs/architecture.md, where a record's time goes).

    Then the young generation is collected after ``YOUNG_COLLECTION_AFTER`` net container
    allocations instead of Python's 700: a batch of a thousand records allocates tens of thousands of
    containers that all live until its commit, so the default would run many young collections per
    batch that free little and move the batch into older generations, walked again by their
    collections. Memory stays bounded: at most that many containers wait for a collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_AFTER, 20, 100)


def stop_on_signals(stop: Callable[[], None]) -> None:
    """SIGTERM and SIGINT end a worker that runs in this process (the confluent runtime, the
    in-process tests) after its batch: ``stop`` only asks, from the signal handler, and the loop finishes."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
