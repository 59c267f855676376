"""The egress to one foreign recipient (the notice's section 6): its own process, group, metrics
and scrape job, a BatchLoop over a confluent-kafka transport until SIGTERM / SIGINT."""

from __future__ import annotations

from streams.errors import ConfigError
from streams.observability.metrics import ForeignMetrics
from streams.policy.foreign import find_recipient
from streams.policy.loader import load_policies
from streams.processors.foreign import ForeignProcessor
from streams.runtime.confluent import Runner, RunnerConfig
from streams.runtime.loop import BatchLoop, LoopStats
from streams.serde.governed import GovernedReader, GovernedSchemas
from streams.serde.registry import Registry
from streams.settings import Guarantee, Settings
from streams.topology import Topology
from streams.worker.parts import rights_view, stop_on_signals
from streams.worker.telemetry import Telemetry


def run_foreign_egress(
    settings: Settings,
    *,
    recipient: str,
    worker_id: str,
    guarantee: Guarantee = "exactly_once",
    max_idle_seconds: float | None = None,
) -> tuple[LoopStats, dict[str, int]]:
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
    runner = Runner(config, lambda transport: BatchLoop(transport, processor, offload=True, pipelined=True))
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
    runner.loop.on_committed.append(lambda inputs, outcomes: foreign_metrics.observe(outcomes))
    telemetry.checks["rights_view"] = lambda: view.healthy

    stop_on_signals(runner.stop)
    view.start()
    telemetry.start()
    try:
        return runner.run(max_idle_seconds=max_idle_seconds), dict(processor.refused)
    finally:
        telemetry.stop()
        view.stop()
