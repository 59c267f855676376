"""Builds a runner from settings and runs it until SIGTERM / SIGINT."""

from __future__ import annotations

import datetime as dt
import gc
import logging
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry

from streams.audit.sealer import AuditSealer, recover_chain, signing_key
from streams.errors import ConfigError
from streams.kafka.reader import reader, topic_partitions
from streams.messages import Outcome
from streams.observability.logs import configure as configure_logging
from streams.observability.metrics import ForeignMetrics, RightsMetrics
from streams.observability.telemetry import Telemetry
from streams.policy.foreign import find_recipient
from streams.policy.loader import PolicySet, load_policies
from streams.processors.erasure import ErasureOutcome, RightsProcessor, index_lookup, provision_lookup
from streams.processors.foreign import ForeignProcessor
from streams.processors.ingest import Processor
from streams.quality.monitor import QualityMonitor
from streams.rights.index_client import SubjectIndex
from streams.rights.view import RightsView
from streams.runtime.confluent import Guarantee, Runner, RunnerConfig, RunnerStats
from streams.runtime.held import HeldMessages
from streams.runtime.loop import FatalError
from streams.serde.governed import GovernedReader, GovernedSchemas
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


def pipeline_processor(settings: Settings, policies: PolicySet, registry: Registry, **options: Any) -> Processor:
    """The ingest processor as every runtime, replay and dry run builds it: governed schemas from
    ``JOINTUSE_SCHEMA_DIR``, pseudonyms under the deployment's key, the pipeline's clock skew."""
    return Processor(
        topology=Topology(settings.topic_prefix),
        policies=policies,
        governed=GovernedSchemas.load(settings.schema_dir),
        registry=registry,
        subjects=settings.subject_keys(),
        max_clock_skew=dt.timedelta(seconds=settings.max_clock_skew_seconds),
        **options,
    )


def rights_view(settings: Settings) -> RightsView:
    topic = Topology(settings.topic_prefix).rights
    return RightsView(settings.kafka_common(), topic, group_id=f"{settings.topic_prefix}.pipeline.rights-view")


def erasure_delay(settings: Settings) -> HeldMessages:
    """What the erasure loop holds each rights request in for the grace (while it keeps polling)."""
    return HeldMessages(int(settings.erasure_grace_seconds * 1000))


def rights_processor(settings: Settings, held: HeldMessages) -> RightsProcessor:
    topology = Topology(settings.topic_prefix)
    scan_group = f"{settings.topic_prefix}.pipeline.scan"
    return RightsProcessor(
        topology=topology,
        rows=index_lookup(SubjectIndex(settings.index_url), wait_seconds=settings.index_wait_seconds),
        subjects=settings.subject_keys(),
        provisions=provision_lookup(settings.kafka_common(), topology, group_id=scan_group),
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


def build_rights_runner(settings: Settings, *, worker_id: str, guarantee: Guarantee) -> Runner[ErasureOutcome]:
    """The erasure side: the rights topic in its own group, one transaction per batch of requests."""
    topology = Topology(settings.topic_prefix)
    config = RunnerConfig(
        kafka=settings.kafka_common(),
        group_id=f"{settings.topic_prefix}.pipeline-confluent-rights",
        transactional_id=f"{settings.topic_prefix}.pipeline-confluent-rights.{worker_id}",
        guarantee=guarantee,
        batch_size=50,
        poll_timeout=0.2,
        subscription=(topology.rights,),
    )
    held = erasure_delay(settings)
    return Runner(config, rights_processor(settings, held), topology, held=held)


def build_runner(
    settings: Settings,
    *,
    worker_id: str,
    guarantee: Guarantee,
    batch_size: int = 500,
    is_stopped: Callable[[str, str], bool] = lambda source, key: False,
) -> tuple[Runner[Outcome], Telemetry]:
    topology = Topology(settings.topic_prefix)
    policies = load_policies(settings.policy_path)
    registry = Registry(settings.registry_conf())
    processor = pipeline_processor(settings, policies, registry, worker_id=worker_id, is_stopped=is_stopped)
    config = RunnerConfig(
        kafka=settings.kafka_common(),
        group_id=f"{settings.topic_prefix}.pipeline-confluent",
        # Stable per worker: a restarted worker fences its predecessor and aborts its open transaction.
        transactional_id=f"{settings.topic_prefix}.pipeline-confluent.{worker_id}",
        guarantee=guarantee,
        batch_size=batch_size,
    )
    sealer = audit_sealer(settings, config.transactional_id)
    runner = Runner(config, processor, topology, sealer=sealer)
    observed = Telemetry(
        settings,
        group_id=config.group_id,
        topics=ingest_topics(settings, policies),
        registry=registry,
        policy=policies.latest,
        assigned=lambda: bool(runner.assigned),
    )
    runner.metrics = observed.metrics
    runner.on_committed.append(lambda inputs, outcomes: observed.metrics.observe(zip(inputs, outcomes, strict=True)))
    return runner, observed


def quality_monitor(settings: Settings, registry: CollectorRegistry) -> QualityMonitor:
    return QualityMonitor(
        registry,
        schema_path=settings.schema_dir / "customer_record.v1.avsc",
        suites_dir=settings.dq_suites_dir,
        sample_rate=settings.dq_sample_rate,
        batch_size=settings.dq_batch_size,
    )


def settle_heap() -> None:
    """Called once a worker has built everything, right before its loop starts: what exists now
    (modules, schemas, compiled codecs and policies) lives as long as the process, so it leaves the
    garbage collector's generations. Full collections otherwise walked all of it again and again,
    because every batch in flight outlives a young collection: about 60-90 ms each, 11% of a worker's
    time on the bench workload. Measured in docs/architecture.md."""
    gc.collect()
    gc.freeze()


def run_worker(
    settings: Settings,
    *,
    worker_id: str,
    guarantee: Guarantee,
    max_idle_seconds: float | None = None,
    batch_size: int = 500,
) -> RunnerStats:
    view = rights_view(settings)
    runner, telemetry = build_runner(
        settings, worker_id=worker_id, guarantee=guarantee, batch_size=batch_size, is_stopped=view.is_stopped
    )
    eraser = build_rights_runner(settings, worker_id=worker_id, guarantee=guarantee)
    quality = quality_monitor(settings, telemetry.metrics.registry)
    telemetry.checks["rights_view"] = lambda: view.healthy
    runner.on_committed.append(lambda inputs, outcomes: quality.offer(outcomes))
    rights_metrics = RightsMetrics(telemetry.metrics.registry, lambda: len(view.state), lambda: view.lag)
    eraser.on_committed.append(lambda inputs, outcomes: rights_metrics.observe(outcomes))

    def stop(signum: int, frame: FrameType | None) -> None:
        runner.stop()
        eraser.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    configure_logging(worker_id=worker_id)
    # No record is decided before every stop-of-use request on file is known.
    view.start()
    erasure_failure: list[FatalError] = []

    def erase() -> None:
        try:
            eraser.run()
        except FatalError as exc:  # the worker stops with it: erasure must not silently end
            erasure_failure.append(exc)
            runner.stop()

    erasing = threading.Thread(target=erase, name="erasure", daemon=True)
    erasing.start()
    quality.start()
    telemetry.start()
    settle_heap()
    log.info("ready: the rights view is read; joining the group", extra={"stopped_subjects": len(view.state)})
    try:
        stats = runner.run(max_idle_seconds=max_idle_seconds)
    finally:
        quality.stop()
        eraser.stop()
        erasing.join(30)
        view.stop()
        telemetry.stop()
    if erasure_failure:
        raise erasure_failure[0]
    return stats


def run_foreign_egress(
    settings: Settings,
    *,
    recipient: str,
    worker_id: str,
    guarantee: Guarantee = "exactly_once",
    max_idle_seconds: float | None = None,
) -> tuple[RunnerStats, dict[str, int]]:
    """Runs the egress to one foreign recipient until SIGTERM / SIGINT (or idle that long).
    Returns the runner's counts and the refusals by reason."""
    topology = Topology(settings.topic_prefix)
    policies = load_policies(settings.policy_path)
    provider = policies.latest.foreign_provision.provider
    find_recipient(policies.latest, recipient)  # an unknown recipient fails here, before any consumer starts
    if provider is None:
        raise ConfigError("the policy names no foreign provision provider")
    view = rights_view(settings)
    registry = Registry(settings.registry_conf())
    processor = ForeignProcessor(
        topology,
        policies,
        GovernedReader(GovernedSchemas.load(settings.schema_dir), registry),
        recipient,
        is_stopped=view.is_stopped,
    )
    name = f"{settings.topic_prefix}.pipeline-foreign-{recipient}"
    config = RunnerConfig(
        kafka=settings.kafka_common(),
        group_id=name,
        transactional_id=f"{name}.{worker_id}",
        guarantee=guarantee,
        subscription=(topology.ingest(provider),),
    )
    runner = Runner(config, processor, topology)
    # Its own /metrics, /healthz and /readyz: the egress is a separate process and scrape job.
    telemetry = Telemetry(
        settings,
        group_id=name,
        topics=list(config.subscription),
        registry=registry,
        policy=policies.latest,
        assigned=lambda: bool(runner.assigned),
    )
    foreign_metrics = ForeignMetrics(telemetry.metrics.registry, recipient)
    runner.on_committed.append(lambda inputs, outcomes: foreign_metrics.observe(outcomes))
    telemetry.checks["rights_view"] = lambda: view.healthy

    def stop(signum: int, frame: FrameType | None) -> None:
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    view.start()
    telemetry.start()
    try:
        return runner.run(max_idle_seconds=max_idle_seconds), dict(processor.refused)
    finally:
        telemetry.stop()
        view.stop()
