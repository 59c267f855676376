"""The erasure delay queue (pure): requests wait for their grace while reading goes on, and the
committable position never passes a request that is still waiting."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from streams.policy.erasure_queue import ErasureQueue
from streams.policy.rights import RightsAction, RightsRequest

GRACE_MS = 45_000


def _request(customer: str, action: RightsAction, requested_at: dt.datetime | None = None) -> RightsRequest:
    return RightsRequest(
        request_id=f"r-{customer}-{action.value}",
        action=action,
        customer_id=customer,
        source="jcom",
        requested_at=requested_at or dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )


# (partition, customer or None for a message that is no request, action, milliseconds since the last one)
steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2),
        st.sampled_from(("a", "b", "c", "d", None)),
        st.sampled_from(list(RightsAction)),
        st.integers(min_value=0, max_value=30_000),
        st.booleans(),  # handle what is due after this step
    ),
    max_size=60,
)


@given(steps)
def test_the_position_never_passes_a_waiting_request_and_nothing_is_due_early(script: list[tuple]) -> None:
    queue = ErasureQueue(GRACE_MS)
    offsets = {0: 0, 1: 0, 2: 0}
    now = 0
    read_at: dict[tuple[int, int], int] = {}
    handled: list[tuple[int, int]] = []
    for partition, customer, action, elapsed, handle in script:
        now += elapsed
        offset = offsets[partition]
        offsets[partition] += 1
        request = None if customer is None else _request(f"{customer}{partition}", action)
        queue.read(partition, offset, request, read_at_ms=now)
        read_at[(partition, offset)] = now
        if handle:
            due = queue.due(now)
            for waiting in due:
                assert waiting.request.action is RightsAction.ERASE
                assert read_at[(waiting.partition, waiting.offset)] + GRACE_MS <= now  # never before its grace
            queue.done(due)
            handled.extend((w.partition, w.offset) for w in due)
        committable = queue.committable()
        for waiting in queue.due(10**12):  # everything still waiting
            assert committable[waiting.partition] <= waiting.offset
        for partition_read, position in committable.items():
            assert position <= offsets[partition_read]
            if not any(w.partition == partition_read for w in queue.due(10**12)):
                assert position == offsets[partition_read]
    assert len(set(handled)) == len(handled)  # nothing handled twice


def test_requests_wait_for_the_grace_counted_from_the_read_not_from_the_producers_date() -> None:
    queue = ErasureQueue(GRACE_MS)
    long_ago = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    queue.read(0, 7, _request("a", RightsAction.ERASE, requested_at=long_ago), read_at_ms=1_000)
    assert queue.due(1_000 + GRACE_MS - 1) == []
    (due,) = queue.due(1_000 + GRACE_MS)
    assert due.offset == 7 and queue.next_due_ms() == 1_000 + GRACE_MS
    assert queue.committable() == {0: 7}
    queue.done([due])
    assert queue.committable() == {0: 8} and len(queue) == 0


def test_a_later_request_of_the_subject_replaces_a_waiting_erasure() -> None:
    queue = ErasureQueue(GRACE_MS)
    queue.read(0, 1, _request("a", RightsAction.ERASE), read_at_ms=0)
    queue.read(0, 2, _request("a", RightsAction.RESUME), read_at_ms=10)
    assert queue.due(10**9) == [] and queue.committable() == {0: 3}
    queue.read(0, 3, _request("a", RightsAction.ERASE), read_at_ms=20)
    queue.read(0, 4, _request("a", RightsAction.ERASE), read_at_ms=30)
    (due,) = queue.due(10**9)
    assert due.offset == 4 and queue.committable() == {0: 4}


def test_revoked_partitions_are_forgotten() -> None:
    queue = ErasureQueue(GRACE_MS)
    queue.read(0, 1, _request("a", RightsAction.ERASE), read_at_ms=0)
    queue.read(1, 5, _request("b", RightsAction.ERASE), read_at_ms=0)
    queue.forget([0])
    assert [w.partition for w in queue.due(10**9)] == [1] and queue.committable() == {1: 5}
