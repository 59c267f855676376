"""The sealer in the real batch loop (in-memory transport): aborts, crashes and rebalances leave
chains that verify; checkpoints come with a writer's first event in a partition, by count and by
time, and recovery's rules hold."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streams.audit.core.chain import AuditChain, ChainVerifier, read_checkpoint
from streams.audit.sealer import AuditSealer
from streams.errors import FatalError
from streams.kafka.partitioner import partition_of
from streams.messages import InMessage, Outcome, OutMessage
from streams.policy.decision import Status
from streams.runtime.loop import BatchLoop
from streams.runtime.transaction import ErrorPolicy
from tests.runtime.memory import Abortable, Fenced, MemoryBroker, MemoryTransport

AUDIT, CHECKPOINTS = "audit", "checkpoints"
KEY = Ed25519PrivateKey.generate()
NO_WAIT = ErrorPolicy(backoff_first_seconds=0, backoff_max_seconds=0)
PARTITIONS = 3


class Audited:
    """A processor that writes a delivery and an audit event per input, keyed like a subject."""

    def process(self, message: InMessage) -> Outcome:
        key = b"subject-" + (message.value or b"")
        event = b'{"input":"' + (message.value or b"") + b'"}'
        return Outcome(
            Status.SHARED,
            "shared",
            "jcom",
            (OutMessage("deliver", key, message.value, []), OutMessage(AUDIT, key, event, [])),
            {},
            (),
        )


class CrashesAtCommit(MemoryTransport):
    def __init__(self, broker: MemoryBroker, *, commits_before: int) -> None:
        super().__init__(broker)
        self.commits_left = commits_before

    async def commit(self) -> None:
        if self.commits_left == 0:
            raise Fenced("the process died here")
        self.commits_left -= 1
        await super().commit()


def sealer(chain: AuditChain, *, every_events: int = 1000, clock: Iterator[float] | None = None) -> AuditSealer:
    ticks = clock or iter(float(n) for n in range(10**6))
    return AuditSealer(
        chain,
        audit_topic=AUDIT,
        partitions=PARTITIONS,
        checkpoints_topic=CHECKPOINTS,
        key=KEY,
        every_events=every_events,
        every_seconds=10**9,
        clock=lambda: next(ticks),
    )


def run(transport: MemoryTransport, seal: AuditSealer, **options: object) -> None:
    loop = BatchLoop(transport, Audited(), policy=NO_WAIT, sealer=seal, **options)  # type: ignore[arg-type]
    asyncio.run(loop.run(max_idle_seconds=0))


def verified(broker: MemoryBroker) -> ChainVerifier:
    checkpoints = [read_checkpoint(m.value, KEY.public_key()) for m in broker.outputs if m.topic == CHECKPOINTS]
    verifier = ChainVerifier(checkpoints)
    offsets = dict.fromkeys(range(PARTITIONS), 0)
    for message in broker.outputs:
        if message.topic == AUDIT:
            assert message.partition is not None
            verifier.feed(message.partition, offsets[message.partition], message.value)
            offsets[message.partition] += 1
    verifier.finish()
    return verifier


@pytest.mark.parametrize("pipelined", [False, True], ids=["serial", "pipelined"])
def test_aborted_batches_leave_no_trace_in_the_chain(pipelined: bool) -> None:
    broker = MemoryBroker()
    broker.fill(20)
    transport = MemoryTransport(broker)
    transport.fail("send_offsets", Abortable("coordinator moved"), Abortable("again"))
    run(transport, sealer(AuditChain("w")), pipelined=pipelined)
    verifier = verified(broker)
    assert verifier.first is None, verifier.violations
    assert verifier.events == 40
    audit = [m for m in broker.outputs if m.topic == AUDIT]
    assert all(m.partition == partition_of(m.key or b"", PARTITIONS) for m in audit)


def test_a_crashed_writer_that_recovers_its_heads_continues_its_chains() -> None:
    broker = MemoryBroker()
    broker.fill(10)
    crashing = CrashesAtCommit(broker, commits_before=2)
    first = AuditChain("w")
    with pytest.raises(FatalError):
        run(crashing, sealer(first))
    # Recovery reads each partition's last committed event of the writer (streams.audit.sealer).
    recovered = AuditChain("w")
    for partition in range(PARTITIONS):
        mine = [m.value for m in broker.outputs if m.topic == AUDIT and m.partition == partition]
        if mine:
            recovered.recover(partition, mine[-1])
    run(MemoryTransport(broker), sealer(recovered))
    verifier = verified(broker)
    assert verifier.first is None, verifier.violations
    assert verifier.events == 20


def test_a_writer_that_forgets_its_heads_is_caught() -> None:
    """Without recovery a restarted writer would start again at seq 0: a repeat the verifier sees."""
    broker = MemoryBroker()
    broker.fill(4)
    run(MemoryTransport(broker, partitions={("in", 0)}), sealer(AuditChain("w")))
    run(MemoryTransport(broker, partitions={("in", 1)}), sealer(AuditChain("w")))
    first = verified(broker).first
    assert first is not None and first.rule.value in ("reordered", "checkpoint_mismatch")


def test_checkpoints_come_with_first_events_and_by_count() -> None:
    broker = MemoryBroker()
    broker.fill(30)
    run(MemoryTransport(broker, batch_size=5), sealer(AuditChain("w"), every_events=20))
    checkpoints = [read_checkpoint(m.value, KEY.public_key()) for m in broker.outputs if m.topic == CHECKPOINTS]
    assert all(c is not None for c in checkpoints)
    firsts = {c.partition for c in checkpoints if c is not None and c.seq == 0}
    touched = {m.partition for m in broker.outputs if m.topic == AUDIT}
    assert firsts <= touched and len(checkpoints) >= len(touched) + 2  # firsts, then every 20 events
    verifier = verified(broker)
    assert verifier.first is None and verifier.checkpoints_matched == len(checkpoints)
