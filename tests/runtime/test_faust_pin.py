"""streams.app and the table apps rely on private parts of faust's consumer, checked against one faust version (a new
one must be checked again):
- it replaces ``Consumer._commit`` under exactly-once (our transactions commit the offsets) and
  calls the driver's ``_commit`` at least once;
- its consumer (``streams.runtime.faust_kafka.WholeFetchConsumer``) overrides
  ``Consumer._drain_messages`` (the per-message drain of faust's fetcher) and reads whole fetches
  with ``Consumer.getmany`` instead."""

from __future__ import annotations

import inspect
from pathlib import Path

import faust
from faust.transport.consumer import Consumer

from streams.settings import Settings


def test_the_replaced_commit_method_is_the_one_checked() -> None:
    assert faust.__version__ == "0.15.3", "re-check streams.app._leave_offsets_to_transactions, then update the pin"
    assert list(inspect.signature(Consumer._commit).parameters) == ["self", "offsets"]
    assert inspect.iscoroutinefunction(Consumer._commit)


def test_the_replaced_drain_and_the_batch_read_are_the_ones_checked() -> None:
    """streams.runtime.faust_kafka.WholeFetchConsumer overrides the drain in a subclass: faust's own
    is left as it is, whatever was imported before this test."""
    import streams.app  # noqa: F401 - importing the app must change no faust class
    from streams.runtime.faust_kafka import WholeFetchConsumer

    assert faust.__version__ == "0.15.3", "re-check streams.runtime.faust_kafka.WholeFetchConsumer, then the pin"
    assert Consumer._drain_messages.__module__ == "faust.transport.consumer"
    assert list(inspect.signature(Consumer._drain_messages).parameters) == ["self", "fetcher"]
    assert inspect.iscoroutinefunction(Consumer._drain_messages)
    assert "await consumer._drain_messages(self)" in inspect.getsource(faust.transport.consumer.Fetcher)
    assert WholeFetchConsumer._drain_messages is not Consumer._drain_messages
    assert list(inspect.signature(Consumer.getmany).parameters) == ["self", "timeout"]
    assert inspect.isasyncgenfunction(Consumer.getmany)


def test_the_committed_reads_transport_s_private_hooks_are_the_ones_checked() -> None:
    """streams.runtime.faust_kafka sets the isolation level on the consumer faust creates (aiokafka
    reads ``_isolation_level`` when it starts), replaces the coordinator's offset fetch on the
    instance, reads its generation and member id, and replaces the producer's sender."""
    import aiokafka
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from aiokafka.producer.sender import Sender, TxnOffsetCommitHandler
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    assert faust.__version__ == "0.15.3", "re-check streams/runtime/faust_kafka.py, then update the pin"
    assert aiokafka.__version__ == "0.14.0", "re-check streams/runtime/faust_kafka.py, then update the pin"
    assert list(inspect.signature(AIOKafkaConsumerThread._create_worker_consumer).parameters) == ["self", "transport"]
    source = inspect.getsource(aiokafka.AIOKafkaConsumer)
    assert "self._isolation_level = isolation_level" in source
    assert "isolation_level=self._isolation_level" in source  # handed to the fetcher when it starts
    assert list(inspect.signature(GroupCoordinator._do_fetch_commit_offsets).parameters) == ["self", "partitions"]
    assert "await self._do_fetch_commit_offsets(partitions)" in inspect.getsource(GroupCoordinator)
    coordinator = inspect.getsource(GroupCoordinator.__init__)
    assert "self.generation = " in coordinator and "self.member_id = " in coordinator
    assert "self._group_instance_id = group_instance_id" in coordinator
    assert list(inspect.signature(Sender._do_txn_offset_commit).parameters) == ["self", "offsets", "group_id"]
    handler = TxnOffsetCommitHandler.__init__
    assert list(inspect.signature(handler).parameters) == ["self", "sender", "offsets", "group_id"]
    assert "self._sender = Sender(" in inspect.getsource(aiokafka.AIOKafkaProducer.__init__)
    from aiokafka.producer.transaction_manager import TransactionManager

    error_transaction = inspect.getsource(TransactionManager.error_transaction)
    assert "self._transaction_waiter.set_exception(exc)" in error_transaction
    # Why BrokerAbortedTransactions exists: aiokafka forgets the transaction's partitions and group
    # on an abortable error, and then ends the "empty" transaction without an EndTxn.
    assert "self._txn_partitions.clear()" in error_transaction
    assert "is_empty_transaction()" in inspect.getsource(Sender._do_txn_commit)
    assert list(inspect.signature(TransactionManager.__init__).parameters) == [
        "self",
        "transactional_id",
        "transaction_timeout_ms",
    ]
    assert "txn_manager=self._txn_manager" in inspect.getsource(aiokafka.AIOKafkaProducer.__init__)


def test_the_table_apps_hooks_are_subclasses_and_faust_s_own_methods_are_untouched(
    settings: Settings, tmp_path: Path
) -> None:
    """The table apps (subject index, statistics) note transaction gaps one offset short and count
    the writes their producer buffer is handing over: in ``TableConsumer`` and on the instances of
    ``HandoverCountingProducer``, never on faust's classes, whatever was imported or built before."""
    from faust.transport.producer import ProducerBuffer

    from streams.runtime.faust_tables import HandoverCountingProducer, TableConsumer, table_app

    app = table_app(settings, "pin.stats", data_dir=tmp_path, log_name="stats", web_enabled=False)
    assert isinstance(app.consumer, TableConsumer) and isinstance(app.producer, HandoverCountingProducer)
    assert faust.__version__ == "0.15.3", "re-check streams.runtime.faust_tables, then the pin"
    # faust's own methods, as the subclasses were written against them
    assert Consumer._add_gap.__qualname__ == "Consumer._add_gap"
    assert list(inspect.signature(Consumer._add_gap).parameters) == ["self", "tp", "offset_from", "offset_to"]
    assert "await self._add_gap(tp, r_offset + 1, offset)" in inspect.getsource(Consumer)
    # a commit after a run that starts one past the committed offset: held by TableConsumer._new_offset
    assert "if min(acked) - committed_offset > 1:" in inspect.getsource(Consumer._new_offset)
    assert "getmany = self.getmany" in inspect.getsource(Consumer._drain_messages)  # the fetch noted
    assert ProducerBuffer._send_pending.__qualname__ == "ProducerBuffer._send_pending"
    # the sending task reads the sender once, from the instance: a wrapper set at construction is used
    assert "send_pending = self._send_pending" in inspect.getsource(ProducerBuffer)
    assert app.producer.buffer._send_pending.__qualname__.endswith("send_pending_counted")
