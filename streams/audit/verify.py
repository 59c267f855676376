"""Reading an audit topic and its checkpoints into the chain verifier (``streams.audit.core.chain``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from streams.audit.core.chain import ChainVerifier, Checkpoint, read_checkpoint
from streams.kafka.reader import RangeSpec, read_range, scan_topic
from streams.settings import Settings


def verify_topic(
    kafka: Mapping[str, Any],
    *,
    audit_topic: str,
    checkpoints_topic: str,
    key: Ed25519PublicKey,
    group_id: str,
    from_time: dt.datetime | None = None,
    to_time: dt.datetime | None = None,
    on_progress: Callable[[int], None] = lambda done: None,
) -> ChainVerifier:
    """Every committed event of ``audit_topic`` (or those in ``[from_time, to_time)``) checked
    against its writer's chain and the signed checkpoints. Look at ``verifier.first``."""
    checkpoints: list[Checkpoint | None] = [
        read_checkpoint(message.value(), key) for message in scan_topic(kafka, checkpoints_topic, group_id=group_id)
    ]
    verifier = ChainVerifier(checkpoints, anchored=from_time is not None)
    spec = RangeSpec(audit_topic, from_time=from_time, to_time=to_time)
    for batch in read_range(kafka, spec, group_id=group_id, batch_size=1000, on_progress=on_progress):
        for message in batch:
            verifier.feed(message.partition() or 0, message.offset() or 0, message.value())
    verifier.finish(until_ms=int(to_time.timestamp() * 1000) if to_time is not None else None)
    return verifier


def verify_deployment(settings: Settings, **options: Any) -> ChainVerifier:
    """The deployment's own audit topic and checkpoints, with the key of JOINTUSE_AUDIT_KEY_FILE."""
    from streams.audit.sealer import signing_key
    from streams.errors import ConfigError
    from streams.topology import Topology

    if settings.audit_key_file is None:
        raise ConfigError("set JOINTUSE_AUDIT_KEY_FILE (infra/local.sh env sets the local one)")
    topology = Topology(settings.topic_prefix)
    return verify_topic(
        settings.kafka_common(),
        audit_topic=topology.audit,
        checkpoints_topic=topology.audit_checkpoints,
        key=signing_key(settings.audit_key_file).public_key(),
        group_id=f"{settings.topic_prefix}.auditor.verify",
        **options,
    )
