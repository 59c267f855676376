"""What a faust app that keeps tables over topics written in transactions needs (the subject index,
the statistics worker): committed messages only, and offsets committed only after the changelog
writes before them were acknowledged. Both replace private parts of faust and aiokafka, in
subclasses and on the app's own instances only (importing this module changes no faust class);
tests/runtime/test_faust_pin.py pins the versions they were checked against and checks that
faust's own methods are untouched."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.logs import logging_config
from streams.runtime.faust_kafka import CommittedReadsConsumer, CommittedReadsTransport, use_committed_reads
from streams.settings import Settings


def table_app(settings: Settings, app_id: str, *, data_dir: Path, log_name: str, **web: Any) -> faust.App:
    """A faust app that keeps tables (RocksDB, or memory with JOINTUSE_INDEX_STORE=memory) in
    ``data_dir/<app id>``; ``web`` are faust's web settings (``web_enabled=False`` for none).
    The app id is in the path because faust names a table's store by the table alone: a store left
    by a deployment with another topic prefix would otherwise be taken for this one's (its offsets
    would be past the new changelog's end, so nothing would be recovered and the old rows kept).
    Its consumer reads committed messages only (``streams.runtime.faust_kafka``) and commits past
    transaction markers (``TableConsumer``)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        **app_settings(settings, log_name),
        store="rocksdb://" if settings.index_store == "rocksdb" else "memory://",
        datadir=str(data_dir / app_id),
        # Table updates go to the changelog in batches (aiokafka sends each message on its own
        # otherwise: a produce request per event was most of the subject index's time).
        producer_linger_ms=20,
        **web,
    )
    use_committed_reads(app, TableTransport)  # before its topics and tables
    return app


def app_settings(settings: Settings, log_name: str) -> dict[str, Any]:
    """What every faust app of this project sets: the cluster and its credentials, no topic declared
    by faust (topics come from `jointuse topics create`), a member noticed gone in 10 s, JSON logs."""
    return {
        "broker": [f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        "broker_credentials": credentials(settings),
        "autodiscover": False,
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": 10,
        "broker_heartbeat_interval": 2,
        "logging_config": logging_config(settings.log_level, log_name),
    }


def credentials(settings: Settings) -> faust.SASLCredentials | None:
    """The app's SASL credentials from the settings, if the cluster wants them."""
    if not settings.security_protocol.startswith("SASL"):
        return None
    return faust.SASLCredentials(
        username=settings.sasl_username, password=settings.sasl_secret(), mechanism=settings.sasl_mechanism
    )


def changelog_before_offsets(application: faust.App) -> None:
    """faust flushes its producer before it commits offsets, but its buffer's flush returns once no
    message went out for 0.1 s (``flush_atmost``), not when the buffer is empty (read in faust's
    code, not seen failing here). A row update could then still wait there while the offset of its
    event was committed, and a SIGKILL would lose it for good. Every commit waits until the buffer
    is empty and the client has had every write acknowledged. This replaces the driver's private
    commit, as streams.app does; tests/runtime/test_faust_pin.py pins the faust version.

    "Empty" includes the write the buffer's sender has taken out of the queue and is still handing
    to the client (``_send_pending`` awaits aiokafka's ``send``, which waits for room in a batch):
    the queue is empty then, and the client's flush does not know that write yet."""
    if getattr(application.consumer, "_commits_after_the_changelog", False):
        return  # the agent was restarted: installed already
    commit = application.consumer._commit  # type: ignore[attr-defined]

    async def commit_after_the_changelog(offsets: Any) -> bool:
        producer = application.producer
        buffer = producer.buffer
        while buffer.size or getattr(buffer, "handing_over", 0):
            await buffer.flush()
            await asyncio.sleep(0.001)  # a write being handed over: let the sender finish it
        await producer.flush()
        return bool(await commit(offsets))

    application.consumer._commit = commit_after_the_changelog  # type: ignore[attr-defined]
    application.consumer._commits_after_the_changelog = True  # type: ignore[attr-defined]


class HandoverCountingProducer(faust_aiokafka.Producer):
    """faust's producer, whose buffer counts the writes its sender has taken out of the queue and
    not yet handed to the client (``buffer.handing_over``, read by ``changelog_before_offsets``).
    The count wraps the buffer's sender on this instance, before the buffer starts (its sending task
    reads the method once, when it starts): a subclass of the buffer would lose that task, which
    mode collects from the class that declares it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        buffer: Any = self.buffer  # a ProducerBuffer: its sender is private, not in faust's types
        send_pending = buffer._send_pending
        buffer.handing_over = 0

        async def send_pending_counted(fut: Any) -> None:
            buffer.handing_over += 1
            try:
                await send_pending(fut)
            finally:
                buffer.handing_over -= 1

        buffer._send_pending = send_pending_counted


class TableConsumer(CommittedReadsConsumer):
    """faust notes a gap in a partition's offsets (a transaction's commit marker) from the offset
    after the last message read up to the one read now, that one included (``_add_gap(tp,
    last + 1, offset)`` adds ``[from, to + 1)``). The message's own offset is then acknowledged
    twice, and ``_new_offset`` commits only the first run of consecutive offsets: a duplicate ends
    a run. So each commit moved past one transaction of the topic only. Seen here: the statistics
    worker counted 19,000 contributions in 4 s while its committed offset took 50 s to follow, one
    of the pipeline's transactions per commit interval; after a restart it would count most of
    them again (upstream: robinhood/faust#625, faust-streaming/faust#606). The gap noted here ends
    before the message. tests/runtime/test_faust_pin.py pins the faust version."""

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        await super()._add_gap(tp, offset_from, offset_to - 1)


class TableTransport(CommittedReadsTransport):
    Consumer = TableConsumer
    Producer = HandoverCountingProducer
