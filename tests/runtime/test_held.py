"""Held messages (the erasure delay), alone and driving the real batch loop without a broker: the
consumer keeps polling while messages wait, nothing is processed before it is due, and committed
offsets never pass a message still waiting."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.errors import ClusterError
from streams.messages import InMessage, Outcome
from streams.runtime.held import HeldMessages
from streams.runtime.loop import BatchLoop
from streams.runtime.transaction import ErrorPolicy
from tests.runtime.memory import Echo, MemoryBroker, MemoryTransport

NO_WAIT = ErrorPolicy(backoff_first_seconds=0, backoff_max_seconds=0)


def _message(partition: int, offset: int, key: bytes = b"k") -> InMessage:
    return InMessage("rights", partition, offset, key, b"v", 0)


# Fetches: (milliseconds since the previous one, messages per partition 0 and 1)
fetches = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 3), st.integers(0, 3)),
    min_size=1,
    max_size=30,
)


@given(fetches, st.integers(0, 300))
def test_each_partition_is_released_in_order_and_never_before_its_due_time(steps, hold_ms: int) -> None:  # type: ignore[no-untyped-def]
    held = HeldMessages(hold_ms)
    now, next_offset = 0, [0, 0]
    read_at: dict[tuple[int, int], int] = {}
    released: list[InMessage] = []
    for pause, *counts in steps:
        now += pause
        batch = []
        for partition, count in enumerate(counts):
            for _ in range(count):
                batch.append(_message(partition, next_offset[partition]))
                read_at[(partition, next_offset[partition])] = now
                next_offset[partition] += 1
        held.read(batch, now)
        for message in held.release(now):
            assert now - read_at[(message.partition, message.offset)] >= hold_ms
            released.append(message)
    released += held.release(now + hold_ms)
    assert len(held) == 0
    for partition in (0, 1):
        offsets = [m.offset for m in released if m.partition == partition]
        assert offsets == list(range(next_offset[partition]))  # every one, once, in order


def test_a_later_message_of_the_same_key_is_known_until_the_batch_after_it() -> None:
    held = HeldMessages(100)
    erase, other, resume = _message(0, 0, b"jcom:C1"), _message(0, 1, b"jcom:C2"), _message(0, 2, b"jcom:C1")
    held.read([erase, other], 0)
    held.read([resume], 50)
    assert held.release(100) == [erase, other]
    assert held.has_later(erase) and not held.has_later(other)
    assert held.release(150) == [resume]
    assert not held.has_later(resume)


def test_a_batch_put_back_goes_before_what_was_read_after_it() -> None:
    held = HeldMessages(0)
    first, second = _message(0, 0), _message(0, 1)
    held.read([first], 0)
    batch = held.release(0)
    held.read([second], 1)
    held.put_back(batch, due_ms=10)
    assert held.release(5) == []  # the put-back one is not due, and the later one waits behind it
    assert held.release(10) == [first, second]


def test_forgotten_partitions_are_dropped() -> None:
    held = HeldMessages(10)
    held.read([_message(0, 0), _message(1, 0)], 0)
    held.forget([("rights", 0)])
    assert held.release(10) == [_message(1, 0)]


class _Clocked(Echo):
    def __init__(self) -> None:
        self.processed_at: dict[tuple[int, int], float] = {}

    def process(self, message: InMessage) -> Outcome:
        self.processed_at[(message.partition, message.offset)] = time.monotonic()
        return super().process(message)


class _Polled(MemoryTransport):
    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__(broker)
        self.fetched_at: dict[tuple[int, int], float] = {}
        self.polls = 0

    async def fetch(self):  # type: ignore[no-untyped-def]
        self.polls += 1
        await asyncio.sleep(0.005)  # a poll's timeout
        batch = await super().fetch()
        for message in batch:
            self.fetched_at[(message.partition, message.offset)] = time.monotonic()
        return batch


def test_the_loop_keeps_polling_while_messages_wait_and_processes_each_once_when_due() -> None:
    broker = MemoryBroker(topic="rights")
    broker.fill(4)
    transport, processor = _Polled(broker), _Clocked()
    loop = BatchLoop(transport, processor, policy=NO_WAIT, held=HeldMessages(200))
    asyncio.run(loop.run(max_idle_seconds=0))
    assert sorted(processor.processed_at) == sorted(transport.fetched_at)
    waited = [processor.processed_at[k] - transport.fetched_at[k] for k in processor.processed_at]
    assert min(waited) >= 0.2 - 0.002  # monotonic milliseconds
    assert transport.polls > 10  # the consumer was polled all along the wait
    assert Counter(m.value for m in broker.outputs) == Counter(m.value for log in broker.logs.values() for m in log)
    assert broker.committed == {tp: len(log) for tp, log in broker.logs.items()}


def test_a_dependency_outage_holds_the_batch_again_and_commits_nothing_past_it() -> None:
    class IndexDown(Echo):
        def __init__(self, outages: int) -> None:
            self.outages = outages

        def process(self, message: InMessage) -> Outcome:
            if self.outages:
                self.outages -= 1
                raise ClusterError("the subject index does not answer")
            return super().process(message)

    broker = MemoryBroker(topic="rights")
    broker.fill(3)
    transport = MemoryTransport(broker)
    seen: list[dict[tuple[str, int], int]] = []
    transport.on_fetch.append(lambda: seen.append(dict(broker.committed)))
    processor = IndexDown(50)  # more outages than the loop's retry attempts: still not fatal
    loop = BatchLoop(transport, processor, policy=NO_WAIT, held=HeldMessages(0))
    asyncio.run(loop.run(max_idle_seconds=0))
    assert processor.outages == 0
    assert Counter(m.value for m in broker.outputs) == Counter(m.value for log in broker.logs.values() for m in log)
    assert broker.committed == {tp: len(log) for tp, log in broker.logs.items()}
    assert all(not committed for committed in seen[:45])  # nothing committed while it was down


def test_an_aborted_held_batch_is_read_again_and_written_once() -> None:
    from tests.runtime.memory import Abortable

    broker = MemoryBroker(topic="rights")
    broker.fill(3)
    transport = MemoryTransport(broker, batch_size=2)
    transport.fail("commit", Abortable("the transaction timed out"))
    loop = BatchLoop(transport, Echo(), policy=NO_WAIT, held=HeldMessages(0))
    asyncio.run(loop.run(max_idle_seconds=0))
    assert loop.stats.aborted_batches == 1
    assert Counter(m.value for m in broker.outputs) == Counter(m.value for log in broker.logs.values() for m in log)


def test_holding_and_pipelining_do_not_mix() -> None:
    with pytest.raises(ValueError, match="pipelined"):
        BatchLoop(MemoryTransport(MemoryBroker()), Echo(), pipelined=True, held=HeldMessages(1))
