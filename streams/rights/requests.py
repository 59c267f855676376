"""Files rights requests: one message per request on the compacted rights topic."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from confluent_kafka import KafkaException

from streams.errors import ClusterError
from streams.kafka import clients
from streams.rights.core.rules import Requester, RightsAction, RightsRequest
from streams.settings import Settings
from streams.topology import Topology


def file_request(
    settings: Settings,
    action: RightsAction,
    customer_id: str,
    source: str,
    *,
    at: dt.datetime | None = None,
    requester: Requester | None = None,
) -> RightsRequest:
    (request,) = file_requests(settings, action, [(customer_id, source)], at=at, requester=requester)
    return request


def file_requests(
    settings: Settings,
    action: RightsAction,
    subjects: list[tuple[str, str]],
    *,
    at: dt.datetime | None = None,
    requester: Requester | None = None,
) -> list[RightsRequest]:
    """One request per (customer id, source), written by one producer; returns once every one was
    acknowledged."""
    requests = [
        RightsRequest(
            request_id=uuid.uuid4().hex,
            action=action,
            customer_id=customer_id,
            source=source,
            requested_at=at or dt.datetime.now(dt.UTC),
            requester=requester or Requester(),
        )
        for customer_id, source in subjects
    ]
    topic = Topology(settings.topic_prefix).rights
    _write_acknowledged(settings, topic, [(request.key.encode(), request.to_bytes()) for request in requests])
    return requests


def file_correction(settings: Settings, customer_id: str, source: str, *, at: dt.datetime | None = None) -> str:
    """Records that ``source`` republished a corrected record of the subject (訂正); returns the
    request id. Keyed by the subject's current pseudonym, as its deliveries are audited."""
    request_id = uuid.uuid4().hex
    subject = settings.subject_keys().subject(source, customer_id)
    moment = at or dt.datetime.now(dt.UTC)
    value = json.dumps(
        {"request_id": request_id, "subject": subject, "source": source, "at_ms": int(moment.timestamp() * 1000)}
    ).encode()
    _write_acknowledged(settings, Topology(settings.topic_prefix).corrections, [(subject.encode(), value)])
    return request_id


def _write_acknowledged(settings: Settings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    """Writes the messages with one producer; returns once the broker acknowledged every one."""
    failures: list[str] = []
    client = clients.producer(settings.kafka_common())
    try:
        for key, value in messages:
            client.produce(
                topic,
                key=key,
                value=value,
                on_delivery=lambda err, _msg: failures.append(str(err)) if err is not None else None,
            )
    except KafkaException as exc:
        raise ClusterError(f"cannot write to {topic}: {clients.failure(exc)}") from exc
    if client.flush(30) or failures:
        detail = "; ".join(failures[:3]) or "timeout"
        raise ClusterError(f"a message to {topic} was not acknowledged by the broker ({detail})")
