"""The audit chain in the batch loop: a writer's audit events sealed just before their batch's
transaction, its signed checkpoints written in the same transaction, and its chain heads recovered
after a restart. ``streams.audit.core.chain`` holds the rules; this is the adapter."""

from __future__ import annotations

import datetime as dt
import logging
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from streams.audit.core.chain import AuditChain, Checkpoint, link_of, read_checkpoint, sign_checkpoint
from streams.errors import ConfigError
from streams.kafka.partitioner import partition_of
from streams.kafka.reader import RangeSpec, read_range, scan_topic
from streams.messages import OutMessage

log = logging.getLogger("jointuse.audit")
# Checkpoint times come from the writer's clock before its transaction; the events' timestamps
# from the same clock at produce. The margin covers a recovery by another host's clock too.
RECOVERY_MARGIN_MS = 10 * 60 * 1000


def signing_key(path: Path) -> Ed25519PrivateKey:
    """The deployment's Ed25519 key: 64 hex characters (its 32-byte seed) on the file's first line."""
    try:
        seed = bytes.fromhex(path.read_text(encoding="utf-8").split()[0])
        return Ed25519PrivateKey.from_private_bytes(seed)
    except (OSError, IndexError, ValueError) as exc:
        raise ConfigError(f"{path}: not an audit signing key (64 hex characters on the first line)") from exc


def public_key(value: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(value))
    except ValueError as exc:
        raise ConfigError("the audit public key must be 64 hex characters") from exc


def public_hex(key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


class AuditSealer:
    """Seals the audit events of each batch (``seal``) and follows its transaction (``committed``,
    ``aborted``). A checkpoint of every partition the batch touched is added when one is due: the
    writer's first event in a partition (so that recovery knows where it wrote), every
    ``every_events`` events and every ``every_seconds`` seconds."""

    def __init__(
        self,
        chain: AuditChain,
        *,
        audit_topic: str,
        partitions: int,
        checkpoints_topic: str,
        key: Ed25519PrivateKey,
        every_events: int = 10_000,
        every_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.chain = chain
        self.audit_topic = audit_topic
        self.partitions = partitions
        self.checkpoints_topic = checkpoints_topic
        self.key = key
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.clock = clock
        self._last_checkpoint_at = clock()
        self._sealed_at_checkpoint = chain.sealed
        self._checkpointing = False

    def partition_of(self, message: OutMessage) -> int:
        """The partition the producer would choose for a keyed event; a keyless one (an input that
        could not be read) goes by its value, so it still has a known place in a chain."""
        if message.key is not None:
            return partition_of(message.key, self.partitions)
        return zlib.crc32(message.value or b"") % self.partitions

    def seal(self, messages: Sequence[OutMessage]) -> list[OutMessage]:
        out: list[OutMessage] = []
        touched: set[int] = set()
        sealed_now = 0
        for message in messages:
            if message.topic != self.audit_topic or message.value is None:
                out.append(message)
                continue
            partition = self.partition_of(message)
            sealed = self.chain.seal(partition, message.value)
            out.append(OutMessage(message.topic, message.key, sealed, message.headers, partition))
            touched.add(partition)
            sealed_now += 1
        now = self.clock()
        first = {p for p in touched if p not in self.chain.committed}
        due = (
            self.chain.sealed + sealed_now - self._sealed_at_checkpoint >= self.every_events
            or now - self._last_checkpoint_at >= self.every_seconds
        )
        self._checkpointing = bool(touched) and due
        for partition in sorted(touched if self._checkpointing else first):
            head = self.chain.head(partition)
            checkpoint = Checkpoint(self.chain.writer, partition, head.seq, head.digest, int(now * 1000))
            out.append(
                OutMessage(
                    self.checkpoints_topic,
                    f"{self.chain.writer}/{partition}".encode(),
                    sign_checkpoint(checkpoint, self.key),
                    [],
                )
            )
        return out

    def committed(self) -> None:
        self.chain.commit()
        if self._checkpointing:
            self._last_checkpoint_at = self.clock()
            self._sealed_at_checkpoint = self.chain.sealed
            self._checkpointing = False

    def aborted(self) -> None:
        self.chain.rollback()
        self._checkpointing = False


def recover_chain(
    kafka: Mapping[str, Any],
    writer: str,
    *,
    audit_topic: str,
    checkpoints_topic: str,
    key: Ed25519PublicKey,
    group_id: str,
) -> AuditChain:
    """``writer``'s chain as its last committed transaction left it. Its latest checkpoint in each
    partition says where to look (a writer checkpoints its first event in every partition, so a
    partition without one has none of its events); the last event of the writer from there on is
    the head.

    When that cannot be found (the audit topic lost events, or the checkpoints do not match it),
    the writer starts a new chain under a new name rather than stop the stream: ``audit verify``
    reports what broke the old one."""
    try:
        return _recovered(kafka, writer, audit_topic, checkpoints_topic, key, group_id)
    except ConfigError as exc:
        renamed = f"{writer}@{int(time.time() * 1000)}"
        log.error(
            "the audit chain cannot be recovered; a new chain starts", extra={"error": str(exc), "writer": renamed}
        )
        return AuditChain(renamed)


def _recovered(
    kafka: Mapping[str, Any],
    writer: str,
    audit_topic: str,
    checkpoints_topic: str,
    key: Ed25519PublicKey,
    group_id: str,
) -> AuditChain:
    latest: dict[int, Checkpoint] = {}
    needle = f'"writer":"{writer}"'.encode()
    for message in scan_topic(kafka, checkpoints_topic, group_id=group_id, contains=[needle]):
        checkpoint = read_checkpoint(message.value(), key)
        if checkpoint is None or checkpoint.writer != writer:
            continue  # forged or another writer's: verification reports those, recovery ignores them
        known = latest.get(checkpoint.partition)
        if known is None or checkpoint.seq > known.seq:
            latest[checkpoint.partition] = checkpoint
    chain = AuditChain(writer)
    for partition, checkpoint in sorted(latest.items()):
        since = dt.datetime.fromtimestamp(max(0, checkpoint.at_ms - RECOVERY_MARGIN_MS) / 1000, dt.UTC)
        last: bytes | None = None
        spec = RangeSpec(audit_topic, partition=partition, from_time=since)
        for batch in read_range(kafka, spec, group_id=group_id, batch_size=1000):
            for message in batch:
                value = message.value()
                if value is not None and needle in value:
                    link = link_of(value)
                    if link is not None and link.writer == writer:
                        last = value
        if last is None:
            raise ConfigError(
                f"audit partition {partition}: writer {writer}'s checkpointed events are not in {audit_topic}"
            )
        chain.recover(partition, last)
        if chain.committed[partition].seq < checkpoint.seq:
            raise ConfigError(f"audit partition {partition}: writer {writer}'s chain ends before its checkpoint")
    log.info("audit chain recovered", extra={"writer": writer, "partitions": len(latest)})
    return chain
