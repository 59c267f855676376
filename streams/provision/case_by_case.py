"""One provision through a case-by-case channel of the insurer's notice (section 5: a law, a lawyer,
a bank): an operator answers one request, for one subject, once, and it is recorded.

The same engine and canary as every other channel decide what the recipient gets of the subject's
latest record on the provider's ingest topic; the answer is written to a file for the operator to
hand over, and, in one transaction, the provision record (where the basis needs one) and an audit
event naming the request, sealed into the privacy desk's own audit chain. A request reference is
answered once: a second provision under it is refused.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.audit.core.event import Provided, encode_event
from streams.errors import ClusterError, ConfigError
from streams.kafka.company_client import ensure_reachable
from streams.kafka.produce import write_in_transaction
from streams.kafka.reader import RangeSpec, read_range, scan_topic
from streams.messages import H_TRACE_ID, InMessage, OutMessage
from streams.policy.bases import BASES
from streams.policy.canary import LeakCanary
from streams.policy.decision import Decision, Delivery, Status
from streams.policy.engine import Engine
from streams.policy.loader import PolicySet, load_policies
from streams.policy.model import Channel, Policy
from streams.policy.provision import PROVISION_RECORD, Provision
from streams.rights.view import RightsView
from streams.runtime.confluent import in_message
from streams.serde.governed import Decoded, GovernedReader, GovernedSchemas
from streams.serde.json_form import JsonForm
from streams.serde.registry import Registry
from streams.settings import Settings
from streams.topology import Topology
from streams.worker.parts import audit_sealer

REQUEST_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")


class Refused(Exception):
    """The request cannot be answered as asked (the policy withholds it, or it was answered)."""


@dataclass(frozen=True)
class Request:
    channel: str
    basis: str
    reference: str
    subject_key: str  # source:customer_id

    @property
    def source(self) -> str:
        return self.subject_key.partition(":")[0]

    @property
    def customer_id(self) -> str:
        return self.subject_key.partition(":")[2]


@dataclass(frozen=True)
class Answer:
    """What was provided: the recipient's record (JSON form) and where the input was read."""

    channel: str
    reference: str
    record: dict[str, Any]
    delivery: Delivery
    input_topic: str
    input_partition: int
    input_offset: int


def checked(policy: Policy, request: Request) -> Channel:
    """The channel a request names, or ``ConfigError`` naming the option and the rule (no network)."""
    channel = policy.channels_by_id.get(request.channel)
    if channel is None or policy.handling is None:
        raise ConfigError(
            f"--channel: {request.channel} is not a channel of the insurer's notice (policy {policy.version})"
        )
    if BASES[channel.basis].continuous:
        raise ConfigError(f"--channel: {channel.id} is a standing channel; the workers provide to it")
    if request.basis != channel.basis.value:
        raise ConfigError(f"--basis: {channel.id} is provided under {channel.basis.value}, not another basis")
    if not REQUEST_REFERENCE.fullmatch(request.reference):
        raise ConfigError(
            "--request: every case-by-case provision names the request it answers "
            "(letters, digits and . _ : / -, at most 64)"
        )
    if not request.customer_id or request.source != policy.handling.provider:
        raise ConfigError(f"--subject: must be {policy.handling.provider}:<customer_id> (the provider's own customer)")
    return channel


def provide(
    settings: Settings,
    request: Request,
    *,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    on_progress: Callable[[str, int], None] = lambda step, seen: None,
) -> Answer:
    """Answers ``request`` once. Raises ``ConfigError`` (a bad request, exit 2), ``Refused`` (the
    policy withholds it, or it was answered before, exit 1), ``ClusterError`` (exit 3)."""
    policies = load_policies(settings.policy_path)
    channel = checked(policies.in_force(now()) or policies.latest, request)
    ensure_reachable(settings)
    topology = Topology(settings.topic_prefix)
    kafka = settings.kafka_common()
    group = f"{settings.topic_prefix}.auditor.provide"
    _refuse_if_answered(kafka, topology, request, group, on_progress)
    found = _latest_record(kafka, topology, request, group, on_progress)
    decoded = GovernedReader(GovernedSchemas.load(settings.schema_dir), Registry(settings.registry_conf())).decode(
        found.value
    )
    stopped = _is_stopped(kafka, topology, request, group)
    decided = _decide(policies, request, channel, found, decoded, now(), stopped=stopped)
    _write_once(settings, group, _messages(settings, topology, request, channel, decided, writer=group))
    delivery = decided.delivery
    record = JsonForm(decoded.reading.version.classified).to_json(dict(delivery.record))
    return Answer(channel.id, request.reference, record, delivery, found.topic, found.partition, found.offset)


@dataclass(frozen=True)
class _Decided:
    """What the engine decided for the channel, when, and on which input."""

    found: InMessage
    schema_id: int
    decision: Decision
    delivery: Delivery
    at: dt.datetime


def _latest_record(
    kafka: dict[str, Any], topology: Topology, request: Request, group: str, on_progress: Callable[[str, int], None]
) -> InMessage:
    """The subject's latest record on the provider's ingest topic, or ``Refused`` when it has none."""
    latest = None
    spec = RangeSpec(topology.ingest(request.source), key=request.customer_id)
    for batch in read_range(kafka, spec, group_id=group, on_progress=lambda seen: on_progress("ingest", seen)):
        latest = batch[-1] if batch else latest
    if latest is None:
        raise Refused(f"no record of the subject on {topology.ingest(request.source)}")
    return in_message(latest)


def _is_stopped(kafka: dict[str, Any], topology: Topology, request: Request, group: str) -> bool:
    """Whether the subject asked to stop the use of their data, as the rights topic says now."""
    view = RightsView(kafka, topology.rights, group_id=f"{group}.rights")
    view.start()
    try:
        return view.is_stopped(request.source, request.customer_id)
    finally:
        view.stop()


def _decide(
    policies: PolicySet,
    request: Request,
    channel: Channel,
    found: InMessage,
    decoded: Decoded,
    at: dt.datetime,
    *,
    stopped: bool,
) -> _Decided:
    """The channel's delivery of the decoded record, checked by the leak canary; ``Refused`` when the
    policy withholds it or the canary finds a value the channel may not hold (an engine fault)."""
    classified = decoded.reading.version.classified
    decision = Engine(classified, policies).provide(
        decoded.record, request.source, channel.id, now=at, stopped=stopped, trusted=True
    )
    if decision.status is not Status.SHARED:
        raise Refused(f"not provided: {decision.message}")
    delivery = decision.deliveries[channel.id]
    leaks = LeakCanary(classified, policies).inspect(
        delivery, source=request.source, policy_version=decision.policy_version
    )
    if leaks:
        raise Refused(f"not provided: the leak canary found {len(leaks)} value(s) the channel may not hold")
    return _Decided(found, decoded.schema_id, decision, delivery, at)


def _messages(
    settings: Settings,
    topology: Topology,
    request: Request,
    channel: Channel,
    decided: _Decided,
    *,
    writer: str,
) -> list[OutMessage]:
    """The provision record, where the basis needs one, and the audit event naming the request."""
    keys = settings.subject_keys()
    subject = keys.subject(request.source, request.customer_id)
    found, decision, delivery = decided.found, decided.decision, decided.delivery
    messages = []
    entry = Provision(
        channel,
        delivery,
        subject=subject,
        subject_key=request.subject_key,
        source=request.source,
        policy_version=decision.policy_version,
        provided_at=decided.at,
        input_ref={"topic": found.topic, "partition": found.partition, "offset": found.offset},
        request=request.reference,
    ).record()
    if entry is not None:
        messages.append(OutMessage(topology.provision_records, subject.encode(), json.dumps(entry).encode(), []))
    trace = f"provide:{request.reference}"
    event = encode_event(
        subject=subject,
        subject_key_id=keys.key_id,
        source=request.source,
        status=Status.SHARED,
        reason=decision.reason.value,
        recipients={},
        purposes=delivery.purposes,
        dropped=decision.dropped,
        policy_version=decision.policy_version,
        record_policy_version=decision.record_policy_version,
        schema_id=decided.schema_id,
        position=found,
        processed_at_ms=int(decided.at.timestamp() * 1000),
        trace_id=trace,
        processed_by=writer,
        provisions={channel.id: Provided(channel.basis.value, delivery.purposes, delivery.items, delivery.fields)},
        request=request.reference,
    )
    messages.append(OutMessage(topology.audit, subject.encode(), event, [(H_TRACE_ID, trace.encode())]))
    return messages


def _refuse_if_answered(
    kafka: dict[str, Any], topology: Topology, request: Request, group: str, on_progress: Callable[[str, int], None]
) -> None:
    needle = json.dumps({"request": request.reference})[1:-1].encode()
    for message in scan_topic(
        kafka,
        topology.provision_records,
        group_id=group,
        contains=[needle],
        on_progress=lambda seen: on_progress("provision records", seen),
    ):
        try:
            record = json.loads(message.value() or b"{}")
        except ValueError:
            continue
        if (
            record.get("type") == PROVISION_RECORD
            and record.get("request") == request.reference
            and record.get("recipient") == request.channel
        ):
            raise Refused(
                f"request {request.reference} was answered to {request.channel} at {record.get('provided_at')}: "
                "a request is answered once"
            )


def _write_once(settings: Settings, writer: str, messages: list[OutMessage]) -> None:
    """One transaction of the privacy desk's writer: the records and the sealed audit event."""
    sealer = audit_sealer(settings, writer)
    try:
        write_in_transaction(settings.kafka_common(), writer, sealer.seal(messages), what="the provision")
    except ClusterError:
        sealer.aborted()
        raise
    sealer.committed()


def supervision_log(
    settings: Settings, channel_id: str, *, on_progress: Callable[[str, int], None] = lambda step, seen: None
) -> list[dict[str, Any]]:
    """What one entrustee received, oldest first (the supervision log, APPI Art. 25). ``ConfigError``
    for a channel that is not an entrustee of the notice in force; ``ClusterError`` (exit 3)."""
    policies = load_policies(settings.policy_path)
    policy = policies.latest
    channel = policy.channels_by_id.get(channel_id)
    if channel is None or not BASES[channel.basis].supervision_log:
        raise ConfigError(
            f"--channel: {channel_id} is not an entrustee of the insurer's notice (policy {policy.version})"
        )
    ensure_reachable(settings)
    topology = Topology(settings.topic_prefix)
    spec = RangeSpec(topology.supervision, key=channel_id)
    entries = []
    group = f"{settings.topic_prefix}.auditor.supervision"
    for batch in read_range(settings.kafka_common(), spec, group_id=group, on_progress=lambda n: on_progress("log", n)):
        for message in batch:
            try:
                entries.append(json.loads(message.value() or b"{}"))
            except ValueError:
                continue
    return sorted(entries, key=lambda e: str(e.get("provided_at", "")))
