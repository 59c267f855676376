"""``jointuse replay --dry-run``: the recorded decisions against those a policy would make now.

Reads the range and the audit topic, decides each record without encoding, registering or writing
anything (no producer, no committed offsets), and reports the differences per status, recipient,
purpose and item, with counts and a few sample keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from streams.audit.core.event import AuditEvent, readable
from streams.kafka.reader import RangeSpec, read_range, scan_topic
from streams.policy.loader import PolicySet
from streams.policy.model import Policy
from streams.replay.compare import DryRunReport, changes
from streams.rights.view import RightsView
from streams.runtime.confluent import in_message
from streams.serde.registry import Registry
from streams.settings import Settings
from streams.topology import Topology
from streams.worker.parts import pipeline_processor


def recorded_decisions(settings: Settings, topic: str) -> dict[tuple[int, int], AuditEvent]:
    """The latest audit event per input (partition, offset) of ``topic``."""
    topology = Topology(settings.topic_prefix)
    needle = json.dumps({"topic": topic}, separators=(",", ":"))[1:-1].encode()
    found: dict[tuple[int, int], AuditEvent] = {}
    group = f"{settings.topic_prefix}.pipeline-replay.audit"
    scanned = scan_topic(settings.kafka_common(), topology.audit, group_id=group, contains=[needle])
    for event in readable(message.value() for message in scanned):
        if event.input.topic != topic or event.request is not None:  # an operator's provision, not a decision
            continue
        position = (event.input.partition, event.input.offset)
        previous = found.get(position)
        if previous is None or event.processed_at_ms >= previous.processed_at_ms:
            found[position] = event
    return found


def dry_run(
    settings: Settings,
    spec: RangeSpec,
    policy: Policy,
    policies: PolicySet,
    *,
    on_progress: Callable[[int], None] = lambda done: None,
) -> DryRunReport:
    topology = Topology(settings.topic_prefix)
    recorded = recorded_decisions(settings, spec.topic)
    rights = RightsView(
        settings.kafka_common(), topology.rights, group_id=f"{settings.topic_prefix}.pipeline-replay.rights"
    )
    rights.start()
    try:
        processor = pipeline_processor(
            settings,
            policies,
            Registry(settings.registry_conf()),
            policy=policy,
            is_stopped=rights.is_stopped,
        )
        report = DryRunReport()
        group = f"{settings.topic_prefix}.pipeline-replay.dry-run"
        for batch in read_range(settings.kafka_common(), spec, group_id=group, on_progress=on_progress):
            for raw in batch:
                message = in_message(raw)
                event = recorded.get((message.partition, message.offset))
                if event is None:
                    report.without_audit += 1
                    continue
                key = message.key.decode("utf-8", "replace") if message.key is not None else "<no key>"
                report.add(key, changes(event, processor.decision_of(message)))
        return report
    finally:
        rights.stop()
