"""The core batch loop without a broker: each failure of the error policy, deterministically."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence

import pytest

from streams.errors import FatalError
from streams.messages import InMessage, Outcome, OutMessage
from streams.runtime.loop import BatchLoop
from streams.runtime.transaction import ErrorPolicy
from streams.stats.core import wire
from tests.runtime.memory import (
    Abortable,
    Echo,
    Fenced,
    MemoryBroker,
    MemoryTransport,
    Renewable,
    Retriable,
)

NO_WAIT = ErrorPolicy(backoff_first_seconds=0, backoff_max_seconds=0)
# Batch N+1 decided while batch N commits, or one batch at a time: the same guarantees.
PIPELINED = pytest.mark.parametrize("pipelined", [False, True], ids=["serial", "pipelined"])


def _run(transport: MemoryTransport, **options: object) -> BatchLoop:
    loop = BatchLoop(transport, Echo(), policy=NO_WAIT, **options)  # type: ignore[arg-type]
    asyncio.run(loop.run(max_idle_seconds=0))
    return loop


def _values(broker: MemoryBroker) -> Counter[bytes]:
    return Counter(m.value or b"" for m in broker.outputs)


def _everything_once(broker: MemoryBroker) -> None:
    expected = Counter(m.value or b"" for log in broker.logs.values() for m in log)
    assert _values(broker) == expected
    assert broker.committed == {tp: len(log) for tp, log in broker.logs.items()}


@PIPELINED
def test_every_input_is_written_once_and_committed(pipelined: bool) -> None:
    broker = MemoryBroker()
    broker.fill(7)
    loop = _run(MemoryTransport(broker))
    _everything_once(broker)
    assert loop.stats.records == 14 and loop.stats.aborted_batches == 0


@PIPELINED
def test_a_crash_between_write_and_commit_loses_and_duplicates_nothing(pipelined: bool) -> None:
    broker = MemoryBroker()
    broker.fill(5)
    crashing = MemoryTransport(broker)
    crashing.fail("commit", Fenced("the process died here"))
    with pytest.raises(FatalError):
        _run(crashing, pipelined=pipelined)
    assert broker.outputs == [] and broker.committed == {}  # the open transaction never committed
    _run(MemoryTransport(broker))  # the restarted worker: from the last committed positions
    _everything_once(broker)


@PIPELINED
def test_an_abortable_error_aborts_rewinds_and_the_batch_is_done_again(pipelined: bool) -> None:
    broker = MemoryBroker()
    broker.fill(4)
    transport = MemoryTransport(broker)
    transport.fail("send_offsets", Abortable("coordinator moved"))
    loop = _run(transport, pipelined=pipelined)
    _everything_once(broker)
    assert loop.stats.aborted_batches == 1
    assert transport.calls[:5] == ["begin", "write", "send_offsets", "abort", "rewind"]
    # pipelined, the batch decided ahead was dropped and its other partition rewound too
    assert transport.calls[5:7] == (["rewind", "begin"] if pipelined else ["begin", "write"])


@PIPELINED
@pytest.mark.parametrize("can_rewind", [False, True], ids=["no-seek", "seek"])
@pytest.mark.parametrize("step", ["begin", "write", "send_offsets", "commit"])
def test_a_batch_read_before_the_group_moved_on_is_dropped_and_read_again_once(
    pipelined: bool, can_rewind: bool, step: str
) -> None:
    """The broker outage of the faust outage test: the worker rejoins while a batch's transaction is
    open, and is given its partitions again, from the committed offsets. The batch's offsets carry
    the old generation and are refused. Written again under the new one, they would be accepted and
    the batch read again from the committed offsets as well: everything in it twice."""
    broker = MemoryBroker()
    broker.fill(6)
    transport = MemoryTransport(broker, can_rewind=can_rewind)
    transport.before[step] = [transport.rejoin]
    loop = _run(transport, pipelined=pipelined)
    _everything_once(broker)
    refused = transport.calls.count("abort")
    # The batch in flight is refused unless its offsets were in before the group moved on (then the
    # stable fetch waits for the commit, and the next assignment starts after it); pipelined, the
    # batch decided ahead was read under the old generation too (a seeking transport drops it
    # unwritten when it rewinds the one in flight).
    in_flight = 0 if step == "commit" else 1
    ahead = 1 if pipelined and not (can_rewind and in_flight) else 0
    assert loop.stats.aborted_batches == refused == in_flight + ahead
    assert "renew" not in transport.calls


def test_a_refused_batch_does_not_count_towards_the_aborts_in_a_row() -> None:
    broker = MemoryBroker()
    broker.fill(3)
    transport = MemoryTransport(broker, can_rewind=False)
    transport.before["send_offsets"] = [transport.rejoin] * (NO_WAIT.max_aborts_in_a_row + 2)
    loop = _run(transport)
    _everything_once(broker)
    assert loop.stats.aborted_batches == NO_WAIT.max_aborts_in_a_row + 2


def test_a_transport_that_cannot_rewind_writes_the_aborted_batch_again() -> None:
    broker = MemoryBroker()
    broker.fill(4)
    transport = MemoryTransport(broker, can_rewind=False)
    transport.fail("commit", Abortable("aborted by the broker"), Abortable("again"))
    loop = _run(transport, pipelined=True)
    _everything_once(broker)
    assert loop.stats.aborted_batches == 2 and "rewind" not in transport.calls


@PIPELINED
def test_a_fenced_producer_stops_the_loop_with_nothing_committed(pipelined: bool) -> None:
    broker = MemoryBroker()
    broker.fill(3)
    transport = MemoryTransport(broker)
    transport.fail("begin", Fenced("another worker with this transactional id"))
    with pytest.raises(FatalError, match="fatal"):
        _run(transport, pipelined=pipelined)
    assert broker.outputs == [] and "abort" not in transport.calls


@PIPELINED
def test_a_retriable_error_that_clears_is_retried_without_an_abort(pipelined: bool) -> None:
    broker = MemoryBroker()
    broker.fill(2)
    transport = MemoryTransport(broker)
    transport.fail("commit", Retriable("request timed out"), Retriable("request timed out"))
    loop = _run(transport, pipelined=pipelined)
    _everything_once(broker)
    assert loop.stats.aborted_batches == 0
    assert transport.calls.count("commit") == loop.stats.batches + 2


@PIPELINED
def test_a_retriable_error_that_does_not_clear_becomes_an_abort(pipelined: bool) -> None:
    broker = MemoryBroker()
    broker.fill(1)
    transport = MemoryTransport(broker)
    transport.fail("send_offsets", *[Retriable("still timing out")] * NO_WAIT.retry_attempts)
    loop = _run(transport, pipelined=pipelined)
    _everything_once(broker)
    assert loop.stats.aborted_batches == 1


@PIPELINED
def test_too_many_aborts_in_a_row_are_fatal(pipelined: bool) -> None:
    broker = MemoryBroker()
    broker.fill(1)
    transport = MemoryTransport(broker)
    transport.fail("commit", *[Abortable("always")] * 50)
    with pytest.raises(FatalError, match="in a row"):
        _run(transport, pipelined=pipelined)
    assert broker.outputs == []


def test_an_assignment_change_mid_batch_leaves_the_revoked_partition_to_its_new_owner() -> None:
    broker = MemoryBroker(partitions=2)
    broker.fill(3)
    first = MemoryTransport(broker, batch_size=6)
    lost = ("in", 1)
    original_write = first.write

    async def write_then_revoke(messages: Sequence[OutMessage]) -> None:
        await original_write(messages)
        first.revoke(lost)  # the rebalance lands while the batch (both partitions) is being written

    first.write = write_then_revoke  # type: ignore[method-assign]
    _run(first)
    assert broker.committed.get(lost) is None  # never committed by the old owner
    assert all(not (m.value or b"").startswith(b"1-") for m in broker.outputs)
    _run(MemoryTransport(broker, partitions={lost}))  # the new owner
    _everything_once(broker)


def test_a_rebalance_during_a_commit_waits_for_it_and_drops_the_batch_decided_ahead() -> None:
    """aiokafka's transactional offsets are not fenced after a rebalance: a batch of a revoked
    partition committed late would be done twice, once by the next owner."""
    broker = MemoryBroker(partitions=2)
    broker.fill(6)
    old = MemoryTransport(broker, batch_size=4, can_rewind=False, fences_zombies=False)
    loop = BatchLoop(old, Echo(), policy=NO_WAIT, pipelined=True)
    next_owners: list[MemoryTransport] = []
    rebalances: list[asyncio.Task[None]] = []
    original_commit = old.commit

    async def rebalance() -> None:
        everything = set(old.owned)
        for tp in everything:
            old.revoke(tp)
        await loop.revoke(everything)
        next_owners.append(MemoryTransport(broker))  # it starts at the offsets committed by now

    async def commit_during_a_rebalance() -> None:
        if not rebalances:
            rebalances.append(asyncio.ensure_future(rebalance()))
            await asyncio.sleep(0)  # the rebalance starts while this transaction is open
        await original_commit()

    old.commit = commit_during_a_rebalance  # type: ignore[method-assign]
    asyncio.run(loop.run(max_idle_seconds=0))
    assert rebalances[0].done()
    assert loop.stats.batches == 1  # the batch decided ahead was dropped, not committed
    (next_owner,) = next_owners
    assert broker.committed == {("in", 0): 4} and next_owner.positions[("in", 0)] == 4
    asyncio.run(BatchLoop(next_owner, Echo(), policy=NO_WAIT).run(max_idle_seconds=0))
    _everything_once(broker)


def test_a_rebalance_inside_a_fetch_drops_the_batch_in_flight_instead_of_aborting_it() -> None:
    """confluent's revocation callback runs inside ``consume`` and cannot wait: it marks the
    partitions (``drop_revoked``); the batch decided before it is not written, so the broker has
    nothing to fence and nothing is aborted."""
    broker = MemoryBroker(partitions=2)
    broker.fill(6)
    old = MemoryTransport(broker, batch_size=8)  # batch 1: both partitions
    loop = BatchLoop(old, Echo(), policy=NO_WAIT, pipelined=True)
    fetches = 0

    def rebalance_on_the_second_fetch() -> None:
        nonlocal fetches
        fetches += 1
        if fetches == 2:  # batch 1 is decided, its transaction not begun
            lost = ("in", 1)
            old.revoke(lost)
            loop.drop_revoked({lost})

    old.on_fetch.append(rebalance_on_the_second_fetch)
    asyncio.run(loop.run(max_idle_seconds=0))
    assert loop.stats.aborted_batches == 0
    assert broker.committed.get(("in", 1)) is None  # left to the next owner
    asyncio.run(
        BatchLoop(MemoryTransport(broker, partitions={("in", 1)}), Echo(), policy=NO_WAIT).run(max_idle_seconds=0)
    )
    _everything_once(broker)


def test_a_dependency_outage_is_waited_out_however_long_it_lasts() -> None:
    from streams.errors import RegistryError

    class Flaky(Echo):
        def __init__(self, failures: int) -> None:
            self.failures = failures

        def process(self, message):  # type: ignore[no-untyped-def]
            if self.failures:
                self.failures -= 1
                raise RegistryError("the registry does not answer")
            return super().process(message)

    broker = MemoryBroker()
    broker.fill(2)
    processor = Flaky(NO_WAIT.retry_attempts * 20)  # far beyond every cap of the error policy
    loop = BatchLoop(MemoryTransport(broker), processor, policy=NO_WAIT)
    asyncio.run(loop.run(max_idle_seconds=0))
    assert processor.failures == 0
    _everything_once(broker)


@PIPELINED
def test_a_broker_outage_longer_than_the_retry_deadline_aborts_without_counting_towards_the_cap(
    pipelined: bool,
) -> None:
    broker = MemoryBroker()
    broker.fill(2)
    transport = MemoryTransport(broker)
    # 3 times the aborts in a row that would be fatal, each after the retries of its step ran out.
    transport.fail("send_offsets", *[Retriable("the broker does not answer")] * (NO_WAIT.retry_attempts * 30))
    transport.fail("abort", *[Retriable("the broker does not answer")] * 40)
    loop = _run(transport, pipelined=pipelined)
    _everything_once(broker)
    assert loop.stats.aborted_batches == 30


@PIPELINED
def test_a_commit_whose_outcome_the_cluster_has_not_told_is_tried_again_never_aborted(pipelined: bool) -> None:
    broker = MemoryBroker()
    broker.fill(2)
    transport = MemoryTransport(broker)
    # Far past the retry caps: an abort now could not say whether the commit had happened.
    transport.fail("commit", *[Retriable("the coordinator moved")] * (NO_WAIT.retry_attempts * 10))
    loop = _run(transport, pipelined=pipelined)
    assert "abort" not in transport.calls and transport.renewals == 0
    assert transport.calls.count("commit") == NO_WAIT.retry_attempts * 10 + loop.stats.batches
    assert loop.stats.aborted_batches == 0
    _everything_once(broker)


@PIPELINED
def test_a_loop_is_not_writing_from_an_outage_s_abort_until_a_transaction_commits(pipelined: bool) -> None:
    broker = MemoryBroker()
    broker.fill(2)
    transport = MemoryTransport(broker)
    transport.fail("send_offsets", *[Retriable("the broker does not answer")] * (NO_WAIT.retry_attempts * 2))
    loop = BatchLoop(transport, Echo(), policy=NO_WAIT, pipelined=pipelined)
    writing_at_aborts: list[bool] = []
    loop.on_abort.append(lambda: writing_at_aborts.append(loop.writing))
    assert loop.writing
    asyncio.run(loop.run(max_idle_seconds=0))
    assert writing_at_aborts == [False, False]
    assert loop.writing
    _everything_once(broker)


def test_a_loop_whose_transaction_stalls_is_not_writing() -> None:
    broker = MemoryBroker()
    broker.fill(1)
    transport = MemoryTransport(broker)
    loop = BatchLoop(transport, Echo(), policy=ErrorPolicy(stalled_after_seconds=0.2, backoff_first_seconds=0))
    seen: list[bool] = []
    committed = transport.commit

    async def slow_commit() -> None:  # a cluster without a quorum: the commit neither ends nor fails
        seen.append(loop.writing)
        await asyncio.sleep(0.4)
        seen.append(loop.writing)
        await committed()

    transport.commit = slow_commit  # type: ignore[method-assign]
    asyncio.run(loop.run(max_idle_seconds=0))
    assert seen == [True, False]
    assert loop.writing
    _everything_once(broker)


@PIPELINED
def test_a_producer_that_cannot_go_on_is_replaced_and_the_batch_done_again(pipelined: bool) -> None:
    broker = MemoryBroker()
    broker.fill(3)
    transport = MemoryTransport(broker)
    transport.fail("commit", Renewable("the coordinator aborted the transaction after its timeout"))
    loop = _run(transport, pipelined=pipelined)
    _everything_once(broker)
    assert transport.renewals == 1 and loop.stats.aborted_batches == 1


@PIPELINED
def test_a_producer_fenced_again_and_again_is_another_instance_s_and_fatal(pipelined: bool) -> None:
    broker = MemoryBroker()
    broker.fill(3)
    transport = MemoryTransport(broker)
    transport.fail("begin", *[Renewable("fenced")] * 10)
    with pytest.raises(FatalError, match="another worker may be running with this worker id"):
        _run(transport, pipelined=pipelined)
    assert broker.outputs == [] and transport.renewals == NO_WAIT.max_renewals + 1


def test_a_producer_that_cannot_abort_is_replaced() -> None:
    broker = MemoryBroker()
    broker.fill(2)
    transport = MemoryTransport(broker)
    transport.fail("commit", Abortable("the transaction failed"))
    transport.fail("abort", Fenced("the producer cannot abort"))
    loop = _run(transport)
    _everything_once(broker)
    assert transport.renewals == 1 and loop.stats.aborted_batches == 1


@PIPELINED
def test_at_least_once_writes_then_commits_offsets(pipelined: bool) -> None:
    broker = MemoryBroker()
    broker.fill(3)
    transport = MemoryTransport(broker, transactional=False)
    _run(transport, pipelined=pipelined)
    _everything_once(broker)
    assert "begin" not in transport.calls and "commit" not in transport.calls


def test_a_write_that_failed_is_not_done_again_in_the_same_transaction() -> None:
    """Part of it may be in the transaction already: the transaction is aborted and done again."""
    broker = MemoryBroker()
    broker.fill(2)
    transport = MemoryTransport(broker)
    transport.fail("write", Retriable("a request timed out"))
    loop = _run(transport)
    _everything_once(broker)
    assert loop.stats.aborted_batches == 1 and loop._aborts_in_a_row == 0


class _Contributing(Echo):
    """Echo, and a statistics contribution per input (its value as the subject); ``on_process``
    runs before each input is decided (a rebalance during the decision)."""

    def __init__(self) -> None:
        self.on_process: list[Callable[[InMessage], None]] = []

    def process(self, message: InMessage) -> Outcome:
        for hook in self.on_process:
            hook(message)
        echoed = super().process(message)
        subject = (message.value or b"").decode()
        counted = OutMessage(CONTRIBUTIONS, subject.encode(), wire.encode(subject, {"at_ms": 1}), [])
        return echoed._replace(messages=(*echoed.messages, counted))


CONTRIBUTIONS = "contributions"


def _pack(messages: Sequence[OutMessage]) -> list[OutMessage]:
    return wire.pack(messages, CONTRIBUTIONS)


def _contributed(broker: MemoryBroker) -> list[str]:
    return [s for m in broker.outputs if m.topic == CONTRIBUTIONS for s, _ in filter(None, wire.unpack(m.key, m.value))]


@PIPELINED
def test_a_transaction_s_contributions_are_packed_into_one_message(pipelined: bool) -> None:
    broker = MemoryBroker()
    broker.fill(4)
    transport = MemoryTransport(broker, batch_size=3)
    loop = BatchLoop(transport, _Contributing(), policy=NO_WAIT, pipelined=pipelined, pack=_pack)
    asyncio.run(loop.run(max_idle_seconds=0))
    assert [m.value for m in broker.outputs if m.topic == "out"] == [
        m.value for log in broker.logs.values() for m in log
    ]
    assert sorted(_contributed(broker)) == sorted(f"{p}-{i}" for p in range(2) for i in range(4))
    assert sum(m.topic == CONTRIBUTIONS for m in broker.outputs) == loop.stats.batches == 3


def test_contributions_of_a_partition_revoked_during_the_decision_are_left_to_its_next_owner() -> None:
    broker = MemoryBroker(partitions=2)
    broker.fill(3)
    first = MemoryTransport(broker, batch_size=6)
    lost = ("in", 1)
    processor = _Contributing()
    loop = BatchLoop(first, processor, policy=NO_WAIT, pack=_pack)

    def rebalance(message: InMessage) -> None:
        if (message.topic, message.partition) == lost and lost in first.owned:
            first.revoke(lost)
            loop.drop_revoked([lost])

    processor.on_process.append(rebalance)
    asyncio.run(loop.run(max_idle_seconds=0))
    assert _contributed(broker) == ["0-0", "0-1", "0-2"]
    assert broker.committed.get(lost) is None
    processor.on_process.clear()
    asyncio.run(
        BatchLoop(MemoryTransport(broker, partitions={lost}), processor, policy=NO_WAIT, pack=_pack).run(
            max_idle_seconds=0
        )
    )
    assert sorted(_contributed(broker)) == sorted(f"{p}-{i}" for p in range(2) for i in range(3))
    assert Counter(m.value for m in broker.outputs if m.topic == "out") == Counter(
        m.value for log in broker.logs.values() for m in log
    )
    assert broker.committed == {tp: len(log) for tp, log in broker.logs.items()}
