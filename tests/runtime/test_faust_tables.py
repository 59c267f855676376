"""The faust apps that keep tables: each deployment's stores in their own directory, and offsets
committed past the commit markers of the transactions they read."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, patch

import pytest

from streams.runtime.faust_internals import CommittedReadsConsumer
from streams.runtime.faust_tables import TableConsumer, changelog_before_offsets, table_app, table_consumer
from streams.settings import Settings

pytestmark = pytest.mark.unit


def test_two_topic_prefixes_never_share_a_table_store(settings: Settings, tmp_path: Path) -> None:
    # faust names a store by its table alone; a store of another prefix's changelog would be taken
    # for this one's, with offsets past its end, and its rows kept.
    first = table_app(settings, "demo1.stats", data_dir=tmp_path, log_name="stats", web_enabled=False)
    second = table_app(settings, "demo2.stats", data_dir=tmp_path, log_name="stats", web_enabled=False)
    assert first.conf.tabledir != second.conf.tabledir
    assert Path(first.conf.tabledir).is_relative_to(tmp_path)


def test_the_table_consumer_of_a_table_app_and_of_no_other(settings: Settings, tmp_path: Path) -> None:
    """The statistics worker and the subject index read what their consumer handed out through it;
    a plain faust app's consumer knows nothing of that, and is refused rather than misread."""
    import faust

    made = table_app(settings, "consumer.stats", data_dir=tmp_path, log_name="stats", web_enabled=False)
    assert isinstance(table_consumer(made), TableConsumer)
    plain = faust.App("plain.stats", broker="kafka://127.0.0.1:1", web_enabled=False)
    with pytest.raises(TypeError):
        table_consumer(plain)


def test_a_commit_moves_past_every_transaction_marker_acknowledged_so_far(settings: Settings, tmp_path: Path) -> None:
    """Messages at 10, 11, 13, 14, 16 (commit markers at 12 and 15), all acknowledged: one commit
    covers them all. Without the fix faust commits up to 12, then 15, then 17, one per interval."""
    from faust.types import TP

    app = table_app(settings, "markers.stats", data_dir=tmp_path, log_name="stats", web_enabled=False)
    consumer = app.consumer
    tp = TP("contributions", 0)

    async def read_and_acknowledge() -> None:
        last = None
        for offset in (10, 11, 13, 14, 16):
            if last is not None and offset - last > 1:
                await consumer._add_gap(tp, last + 1, offset)  # as faust's fetcher calls it
            consumer._acked[tp].append(offset)
            consumer._acked_index[tp].add(offset)
            last = offset

    asyncio.run(read_and_acknowledge())
    assert consumer._new_offset(tp) == 17


def test_a_commit_waits_for_a_changelog_write_still_being_handed_to_the_client(
    settings: Settings, tmp_path: Path
) -> None:
    """The buffer's sender takes a write out of its queue, then waits (aiokafka waits for room in a
    batch): the queue is empty, but the offsets of the write's event must not be committed yet."""
    from types import SimpleNamespace

    app = table_app(settings, "handover.stats", data_dir=tmp_path, log_name="stats", web_enabled=False)
    committed: list[object] = []

    async def commit(offsets: object) -> bool:
        committed.append(offsets)
        return True

    async def nothing_in_the_client() -> None:
        return None

    app.consumer._commit = commit
    changelog_before_offsets(app)
    app.producer.flush = nothing_in_the_client
    room = asyncio.Event()

    class Channel:
        async def publish_message(self, fut: object, wait: bool) -> None:
            await room.wait()  # the client's batch is full

    async def scenario() -> None:
        handing_over = asyncio.create_task(
            app.producer.buffer._send_pending(SimpleNamespace(message=SimpleNamespace(channel=Channel())))
        )
        await asyncio.sleep(0)
        committing = asyncio.create_task(app.consumer._commit({"partition 0": 5}))
        await asyncio.sleep(0.05)
        assert app.producer.buffer.size == 0 and committed == []  # the queue is empty, the write not sent
        room.set()
        await asyncio.wait_for(committing, 5)
        await handing_over
        assert committed == [{"partition 0": 5}]

    asyncio.run(scenario())


def test_a_message_the_stream_skips_when_a_rebalance_begins_is_never_committed_past(
    settings: Settings, tmp_path: Path
) -> None:
    """faust's own stream, fed offsets 10, 11, 12 of one partition through ``TableConsumer.getmany``:
    10 is processed; a rebalance begins (the flow is suspended) as the stream takes 11 from its
    queue, so the stream skips it; the flow resumes and 12 arrives and is processed. Commits are
    chosen as faust chooses them. Without ``TableConsumer._new_offset`` the second commit moves to
    13 and offset 11 is never processed; with it, the partition is read again from 11, and until
    then the partition counts as processed up to 11 only."""
    app, consumer, tp = _index_reading_audit(settings, tmp_path, "rebalance.index")
    processed: list[int] = []
    committed: list[int] = []

    def commit() -> None:
        _commit_as_faust_does(consumer, tp, committed)

    async def scenario() -> None:
        events = await _handed_out(app, tp, (10, 11, 12))
        channel = app.channel()
        loop = asyncio.get_running_loop()

        async def fetcher_hands_over(*handed: Any) -> None:  # once the stream reads its channel
            for event in handed:
                await channel.put(event)

        def rebalance_begins() -> None:  # once 10 is acknowledged, as the stream takes 11 from its queue
            app.flow_control.suspend()
            loop.call_soon(rebalance_ends)

        def rebalance_ends() -> None:
            app.flow_control.resume()
            feeding.append(loop.create_task(fetcher_hands_over(events[2])))

        async def agent() -> None:
            async for event in app.stream(channel).events():
                processed.append(event.message.offset)
                if event.message.offset == 10:
                    loop.call_soon(rebalance_begins)

        reading = loop.create_task(agent())
        feeding = [loop.create_task(fetcher_hands_over(*events[:2]))]  # after the stream subscribed
        while 12 not in consumer._acked_index[tp]:  # the agent asked for the next event: 12 is done
            await asyncio.sleep(0.01)
        reading.cancel()
        # How far the partition is applied stops at 11, though 12 was processed (the index's lag).
        assert consumer.first_unprocessed(tp) == 11
        commit()  # up to 11: 10 is acknowledged
        commit()  # 12 is acknowledged, 11 is not
        await asyncio.sleep(0)  # the seek back

    async def seek(tp: Any, offset: int) -> None:
        sought.append(offset)

    sought: list[int] = []
    with patch.object(consumer, "seek", seek):
        asyncio.run(asyncio.wait_for(scenario(), 5))
    assert processed == [10, 12]  # the stream skipped 11
    assert committed == [11]  # never past the message nobody processed
    assert consumer.held_back == 1 and sought == [11]  # and 11 is read again
    assert consumer.first_unprocessed(tp) == 11  # until it is processed


def test_messages_faust_drops_from_a_stream_queue_as_it_resumes_the_flow_are_read_again(
    settings: Settings, tmp_path: Path
) -> None:
    """At a start faust resumes the flow a second time after seeking the stream partitions to their
    committed offsets, and resuming clears the streams' queues: messages the fetcher handed to the
    stream during the seek are dropped unprocessed. Here 11 and 12 wait in the queue when the flow
    resumes; 13 comes after and is processed. The partition counts as processed up to 11 only, no
    commit passes 11, and it is read again from 11. (With two messages dropped faust's own rule
    commits nothing more and never reads them again: the partition stayed behind until a
    rebalance.)"""
    app, consumer, tp = _index_reading_audit(settings, tmp_path, "resume.index")
    processed: list[int] = []
    committed: list[int] = []
    sought: list[int] = []

    def commit() -> None:
        _commit_as_faust_does(consumer, tp, committed)

    async def scenario() -> None:
        events, channel, reading = await _dropped_as_the_flow_resumes(app, tp, (10, 11, 12, 13), processed)
        await channel.put(events[3])
        while 13 not in consumer._acked_index[tp] and not reading.done():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the agent asked for the next event: 13 is acknowledged
        reading.cancel()
        assert consumer.first_unprocessed(tp) == 11
        commit()
        commit()
        await asyncio.sleep(0)

    async def seek(tp: Any, offset: int) -> None:
        sought.append(offset)

    with patch.object(consumer, "seek", seek):
        asyncio.run(asyncio.wait_for(scenario(), 5))
    assert processed == [10, 13]  # 11 and 12 were cleared from the queue
    assert committed == [11] and sought == [11]


def test_the_last_messages_faust_drops_as_it_resumes_the_flow_are_read_again_once_they_waited(
    settings: Settings, tmp_path: Path
) -> None:
    """The same drop as above, of the last messages handed out: 11 and 12 are cleared from the
    queue and nothing comes after them, so no later message shows them passed over. faust's commit
    looks only at partitions with acknowledgements, and there is none after 10 was committed. Once
    11 has been the first unprocessed message for ``read_again_after`` seconds, the partition is
    read again from it (before, it waited for the next rebalance: a replacement statistics worker
    whose backlog, the closing contribution included, was dropped at its start never published)."""
    app, consumer, tp = _index_reading_audit(settings, tmp_path, "tail.index")
    consumer.read_again_after = 0.2
    processed: list[int] = []
    committed: list[int] = []
    sought: list[int] = []

    def commit() -> None:
        for pending in consumer._filter_tps_with_pending_acks():  # as faust's commit chooses partitions
            _commit_as_faust_does(consumer, pending, committed)

    async def scenario() -> None:
        reading = (await _dropped_as_the_flow_resumes(app, tp, (10, 11, 12), processed))[2]
        while 10 not in consumer._acked_index[tp] and not reading.done():
            await asyncio.sleep(0.01)
        commit()  # up to 11; 11 starts waiting
        commit()
        await asyncio.sleep(0)
        assert sought == []  # not yet: 11 may still be on its way to the stream
        await asyncio.sleep(0.25)
        commit()
        await asyncio.sleep(0)
        reading.cancel()

    async def seek(tp: Any, offset: int) -> None:
        sought.append(offset)

    with patch.object(consumer, "seek", seek):
        asyncio.run(asyncio.wait_for(scenario(), 5))
    assert processed == [10]
    assert committed == [11] and sought == [11]
    assert consumer.first_unprocessed(tp) == 11


def test_a_revoked_partition_has_nothing_outstanding_when_it_comes_back(settings: Settings, tmp_path: Path) -> None:
    """11 and 12 were handed out, 11 processed, when the partition was revoked: whatever happens
    to 12 is its next owner's. Assigned again later, the partition starts from the group's
    committed offset; 12 is not outstanding here (it would hold the statistics' publications and
    be read again from there)."""
    app, consumer, tp = _index_reading_audit(settings, tmp_path, "revoked.index")

    async def scenario() -> None:
        events = await _handed_out(app, tp, (11, 12))
        consumer.ack(events[0].message)
        assert consumer.first_unprocessed(tp) == 12
        with patch.object(consumer, "_on_partitions_revoked", AsyncMock()):
            await consumer.on_partitions_revoked({tp})

    asyncio.run(asyncio.wait_for(scenario(), 5))
    assert consumer.first_unprocessed(tp) is None


def _index_reading_audit(settings: Settings, tmp_path: Path, app_id: str) -> tuple[Any, Any, Any]:
    """A table app reading partition 0 of "audit" in generation 3, its flow running: the app, its
    consumer and the partition."""
    from faust.types import TP

    app = table_app(settings, app_id, data_dir=tmp_path, log_name="index", web_enabled=False)
    app.topics.add(app.topic("audit"))
    app.consumer_generation_id = 3
    app.flow_control.resume()
    return app, app.consumer, TP("audit", 0)


async def _dropped_as_the_flow_resumes(
    app: Any, tp: Any, offsets: tuple[int, ...], processed: list[int]
) -> tuple[list[Any], Any, asyncio.Task[None]]:
    """The events at ``offsets`` handed out; an agent takes the first and, while it works on it,
    the next two wait in its stream's queue when the flow resumes, as faust's recovery resumes it
    once the seek is done: the queue is cleared, and they are dropped. Returns the events, the
    stream's channel and the agent's task (``processed`` gets each offset it takes)."""
    events = await _handed_out(app, tp, offsets)
    channel = app.channel()
    flow_resumed = asyncio.Event()

    async def agent() -> None:
        async for event in app.stream(channel).events():
            processed.append(event.message.offset)
            if event.message.offset == offsets[0]:
                await flow_resumed.wait()  # the next two wait in the queue meanwhile

    reading = asyncio.get_running_loop().create_task(agent())
    await asyncio.sleep(0.05)  # the stream subscribes to its channel
    await channel.put(events[0])
    while not processed:
        await asyncio.sleep(0.01)
    await channel.put(events[1])
    await channel.put(events[2])
    app.flow_control.resume()
    flow_resumed.set()
    return events, channel, reading


def _commit_as_faust_does(consumer: Any, tp: Any, committed: list[int]) -> None:
    """What faust's commit does with the offset ``_new_offset`` chose."""
    offset = consumer._new_offset(tp)
    if offset is not None:
        committed.append(offset)
        consumer._committed_offset[tp] = offset


async def _handed_out(app: Any, tp: Any, offsets: tuple[int, ...]) -> list[Any]:
    """Events of ``tp`` at ``offsets`` as ``TableConsumer.getmany`` hands them out (noting each)."""

    async def fetched(self: Any, timeout: float) -> Any:
        for offset in offsets:
            yield tp, _message_read_in(3, offset)

    await app.topics._update_indices()
    with patch.object(CommittedReadsConsumer, "getmany", fetched):
        return [app.create_event(b"k", b"v", {}, m) async for _, m in app.consumer.getmany(timeout=1)]


def _message_read_in(generation: int, offset: int) -> Any:
    from faust.types import TP
    from faust.types.tuples import ConsumerMessage

    tp = TP("audit", 0)
    return ConsumerMessage("audit", 0, offset, 0.0, 0, [], b"k", b"v", None, 1, 1, tp, generation_id=generation)
