"""The retention job: tombstones deliveries whose items have passed their retention (APPI Art. 22).

It reads each delivery topic to its end, keeps the latest message per subject key, and for every
subject whose latest delivery has expired (``streams.rights.core.rules.expired``: the shortest retention
among the delivered items, from the message's timestamp) writes a tombstone, so that compaction
removes the subject, and a notice telling the recipient to erase its copies. Topic-level
``retention.ms`` (the longest item retention) is the backstop; this job is the per-item rule.
Idempotent: a subject already tombstoned is skipped.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from streams.errors import ClusterError
from streams.kafka import clients
from streams.kafka.produce import out, produce_waiting
from streams.kafka.reader import scan_topic
from streams.messages import H_ITEMS
from streams.policy.bases import BASES
from streams.policy.model import Policy
from streams.rights.core.rules import expired, expiry_notice
from streams.settings import Settings
from streams.topology import Topology


@dataclass
class RetentionResult:
    scanned: int = 0
    subjects: int = 0
    tombstoned: dict[str, int] = field(default_factory=dict)  # topic -> subjects tombstoned

    @property
    def total(self) -> int:
        return sum(self.tombstoned.values())


@dataclass(frozen=True)
class _Latest:
    timestamp_ms: int
    items: tuple[str, ...]
    tombstone: bool


def run_retention(
    settings: Settings,
    policy: Policy,
    *,
    as_of: dt.datetime,
    dry_run: bool = False,
    on_progress: Callable[[str, int], None] = lambda topic, seen: None,
) -> RetentionResult:
    topology = Topology(settings.topic_prefix)
    targets = [(u.id, topology.deliver(u.id)) for u in policy.joint_users]
    channels = policy.handling.channels if policy.handling is not None else ()
    targets += [(c.id, topology.provide(c.id)) for c in channels if BASES[c.basis].continuous]
    result = RetentionResult()
    client = None if dry_run else clients.producer(settings.kafka_common())
    for recipient, topic in targets:
        latest: dict[bytes, _Latest] = {}
        for message in scan_topic(
            settings.kafka_common(),
            topic,
            group_id=f"{settings.topic_prefix}.retention.scan",
            on_progress=functools.partial(on_progress, topic),
        ):
            result.scanned += 1
            key = message.key()
            if key is None:
                continue
            headers = dict(message.headers() or [])
            raw = headers.get(H_ITEMS) or b""
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            items = tuple(i for i in text.split(",") if i)
            latest[key] = _Latest(message.timestamp()[1], items, message.value() is None)
        result.subjects += len(latest)
        due = []
        for key, last in latest.items():
            delivered_at = dt.datetime.fromtimestamp(last.timestamp_ms / 1000, dt.UTC)
            if not last.tombstone and expired(policy, last.items, delivered_at, as_of):
                due.append((key, delivered_at))
        result.tombstoned[topic] = len(due)
        if client is None:
            continue
        issued = dt.datetime.now(dt.UTC)
        for key, _ in due:
            notice = expiry_notice(key.decode("utf-8", "replace"), recipient, issued_at=issued, expired_at=as_of)
            produce_waiting(client, out(topic, key, None, [("jointuse-erasure-reason", b"retention")]))
            produce_waiting(client, out(topology.notices(recipient), key, notice))
    if client is not None and client.flush(60):
        raise ClusterError("some tombstones were not acknowledged by the broker; run the job again")
    return result
