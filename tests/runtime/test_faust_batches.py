"""The faust transport's batch reader without a broker: a stand-in for faust's consumer yields whole
fetches, as ``Consumer.getmany`` does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from streams.runtime.faust_sink import ConsumerBatches

INGEST, RIGHTS = "t.ingest.jcom.customer.v1", "t.rights.v1"


def _message(topic: str, partition: int, offset: int) -> Any:
    return SimpleNamespace(
        topic=topic, partition=partition, offset=offset, key=b"k", value=b"v", timestamp=1.5, headers=[]
    )


class Fetches:
    """Each ``getmany`` call yields the next prepared fetch (then nothing)."""

    def __init__(self, *fetches: list[Any]) -> None:
        self.fetches = list(fetches)
        self.calls = 0

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        self.calls += 1
        for message in self.fetches.pop(0) if self.fetches else []:
            yield (message.topic, message.partition), message


def _batches(consumer: Fetches, max_pending: int = 100) -> ConsumerBatches:
    return ConsumerBatches(
        consumer, lambda topic: "rights" if topic == RIGHTS else "ingest", timeout=0, max_pending=max_pending
    )


async def _take(batches: ConsumerBatches, route: str, max_records: int) -> list[Any]:
    messages, _ = await batches.take(route, max_records)
    return messages


def test_one_fetch_is_split_by_route_and_nothing_is_lost() -> None:
    consumer = Fetches([_message(INGEST, 0, 1), _message(RIGHTS, 0, 7), _message(INGEST, 1, 2)])
    batches = _batches(consumer)

    async def take() -> tuple[list[Any], list[Any]]:
        return await _take(batches, "ingest", 10), await _take(batches, "rights", 10)

    ingest, rights = asyncio.run(take())
    assert [(m.topic, m.partition, m.offset) for m in ingest] == [(INGEST, 0, 1), (INGEST, 1, 2)]
    assert [(m.topic, m.offset, m.timestamp_ms) for m in rights] == [(RIGHTS, 7, 1500)]
    assert consumer.calls == 1  # the rights message waited for its agent; no second fetch was needed


def test_a_batch_holds_at_most_max_records_and_the_rest_waits_in_order() -> None:
    batches = _batches(Fetches([_message(INGEST, 0, offset) for offset in range(5)]))

    async def take() -> list[list[int]]:
        return [[m.offset for m in await _take(batches, "ingest", 2)] for _ in range(4)]

    assert asyncio.run(take()) == [[0, 1], [2, 3], [4], []]


def test_nothing_more_is_fetched_while_a_route_is_behind() -> None:
    consumer = Fetches([_message(RIGHTS, 0, offset) for offset in range(3)], [_message(INGEST, 0, 9)])
    batches = _batches(consumer, max_pending=3)

    async def take() -> list[Any]:
        first = await _take(batches, "ingest", 10)  # fetches 3 rights messages: that route is now full
        second = await _take(batches, "ingest", 10)  # so this one waits instead of fetching
        return [first, second]

    assert asyncio.run(take()) == [[], []] and consumer.calls == 1


def test_a_route_waiting_for_another_does_not_stall_it() -> None:
    """The rights agent waits while the ingest route is behind; meanwhile the ingest agent takes its
    batches at once (the wait once held the lock: a whole batch wait per ingest batch)."""
    consumer = Fetches([_message(INGEST, 0, offset) for offset in range(6)])
    batches = ConsumerBatches(
        consumer, lambda topic: "rights" if topic == RIGHTS else "ingest", timeout=2.0, max_pending=3
    )

    async def run() -> tuple[list[list[int]], float, list[Any]]:
        await _take(batches, "rights", 10)  # one fetch: 6 ingest messages, that route is now behind
        waiting = asyncio.create_task(_take(batches, "rights", 10))
        await asyncio.sleep(0)  # the rights agent is waiting now
        loop = asyncio.get_running_loop()
        started = loop.time()
        taken = [[m.offset for m in await _take(batches, "ingest", 2)] for _ in range(3)]
        took = loop.time() - started
        return taken, took, await waiting

    taken, took, rights = asyncio.run(run())
    assert taken == [[0, 1], [2, 3], [4, 5]] and rights == []
    assert took < 1.0, f"the ingest route waited {took:.2f} s for the rights route's wait"


def test_messages_of_revoked_partitions_are_forgotten() -> None:
    batches = _batches(Fetches([_message(INGEST, 0, 1), _message(INGEST, 1, 2), _message(INGEST, 0, 3)]))

    async def take() -> list[Any]:
        first = await _take(batches, "ingest", 1)
        batches.forget({(INGEST, 0)})
        return first + await _take(batches, "ingest", 10)

    assert [(m.partition, m.offset) for m in asyncio.run(take())] == [(0, 1), (1, 2)]


class GroupFetches(Fetches):
    """A consumer in a group: ``during_fetch`` runs while a fetch is under way (the consumer's thread
    and the revocation callback run beside this loop in faust)."""

    def __init__(self, *fetches: list[Any]) -> None:
        super().__init__(*fetches)
        self.generation = 3
        self.during_fetch: Any = None
        self.seeks = 0

    def group_member(self) -> tuple[str, int]:
        return ("group", self.generation)

    def assignment(self) -> set[Any]:
        return {(INGEST, 0)}

    async def seek_to_committed(self) -> None:
        self.seeks += 1

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        if self.during_fetch is not None:
            self.during_fetch()
            self.during_fetch = None
        async for item in super().getmany(timeout):
            yield item


def test_records_of_a_fetch_during_which_partitions_were_revoked_are_dropped() -> None:
    """Read under the revoked assignment: committing them under the next generation would be accepted
    by the group, although the partition may be another member's now."""
    consumer = GroupFetches([_message(INGEST, 0, 1)], [_message(INGEST, 0, 1)])
    batches = _batches(consumer)
    consumer.during_fetch = lambda: batches.forget({(INGEST, 0)})

    async def take() -> list[list[int]]:
        return [[m.offset for m in await _take(batches, "ingest", 10)] for _ in range(2)]

    assert asyncio.run(take()) == [[], [1]]  # the next assignment reads it again
    assert consumer.seeks == 0  # its positions start at the committed offsets anyway


def test_a_generation_change_during_a_fetch_reads_again_from_the_committed_offsets() -> None:
    consumer = GroupFetches([_message(INGEST, 0, 5)], [_message(INGEST, 0, 5)])
    batches = _batches(consumer)

    def rejoined() -> None:
        consumer.generation += 1

    consumer.during_fetch = rejoined

    async def take() -> list[list[int]]:
        return [[m.offset for m in await _take(batches, "ingest", 10)] for _ in range(2)]

    assert asyncio.run(take()) == [[], [5]]
    assert consumer.seeks == 1  # the records may have been of the new assignment, past its committed offsets


def test_each_batch_comes_with_the_membership_it_was_read_under() -> None:
    consumer = GroupFetches([_message(INGEST, 0, 1), _message(INGEST, 0, 2)], [_message(INGEST, 0, 3)])
    batches = _batches(consumer)

    async def take() -> list[tuple[list[int], Any]]:
        taken = []
        for _ in range(2):
            messages, member = await batches.take("ingest", 1)
            taken.append(([m.offset for m in messages], member))
        return taken

    assert asyncio.run(take()) == [([1], ("group", 3)), ([2], ("group", 3))]


def test_messages_read_under_an_earlier_membership_keep_it_and_are_dropped_at_the_next_fetch() -> None:
    """The rejoin's revocation callback may not have run yet (faust's consumer thread): the messages
    left from the last fetch were read under the old generation. Sent with the new one, the group
    would accept them, and they would be read again from the committed offsets too: twice. With the
    old one, the group refuses them. Those of another route are dropped at the next fetch, whose
    messages come with the new membership."""
    consumer = GroupFetches(
        [_message(INGEST, 0, 1), _message(INGEST, 0, 2), _message(RIGHTS, 0, 8)],
        [_message(INGEST, 0, 1)],
    )
    batches = _batches(consumer)

    async def take() -> list[tuple[list[int], Any]]:
        first = await batches.take("ingest", 1)  # offset 2 and the rights message wait
        consumer.generation += 1  # rejoined; the revocation not yet handled here
        second = await batches.take("ingest", 1)  # offset 2, pending: no fetch
        third = await batches.take("ingest", 1)  # a fetch under the new membership
        rights = await batches.take("rights", 1)
        return [([m.offset for m in ms], member) for ms, member in (first, second, third, rights)]

    assert asyncio.run(take()) == [
        ([1], ("group", 3)),
        ([2], ("group", 3)),  # the old membership: the group refuses its offsets
        ([1], ("group", 4)),
        ([], ("group", 4)),  # read under the old one: dropped, not handed over as the new one's
    ]
