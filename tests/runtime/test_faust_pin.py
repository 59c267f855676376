"""The parts of faust and aiokafka the project changes, calls or reads beyond what they offer are all
in streams/runtime/faust_internals.py, which names each; here they are checked against the faust
and aiokafka versions they were written against. A new version of either must be checked again
(what each part relies on is told where it is used), then the pins below updated."""

from __future__ import annotations

import importlib
import inspect
import io
import itertools
import re
import tokenize
from pathlib import Path

import aiokafka
import faust
from faust.transport.consumer import Consumer

from streams.runtime import faust_internals
from streams.settings import Settings
from tests.layers import PACKAGE

FAUST, AIOKAFKA = "0.15.3", "0.14.0"
NAMED = re.compile(r"``((?:faust|aiokafka)[\w.]*):(\w+)\.(\w+)``")


def _named() -> list[tuple[str, str, str]]:
    """``(module, class, attribute)`` of every part the internals module's docstring names."""
    return NAMED.findall(faust_internals.__doc__ or "")


def _defined(owner: type, attribute: str) -> bool:
    """Whether ``owner`` has ``attribute``: on the class or a base, or set or declared on instances."""
    if hasattr(owner, attribute):
        return True
    sources = [inspect.getsource(base) for base in owner.__mro__ if base.__module__.startswith(("faust", "aiokafka"))]
    declared = re.compile(rf"self\.{attribute}\s*(:[^=\n]*)?=|^\s+{attribute}\s*:", re.MULTILINE)
    return any(declared.search(source) for source in sources)


def _names_used(source: str) -> set[str]:
    """The names read, set (``x.name``) or defined (``def name``) in code, docstrings and comments
    left out, and the private names given as strings (``getattr(x, "_name")``)."""
    found: set[str] = set()
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for before, token in itertools.pairwise(tokens):
        if before.string in (".", "def") and token.type == tokenize.NAME:
            found.add(token.string)
        if token.type == tokenize.STRING and re.fullmatch(r"[\"']_[a-z]\w*[\"']", token.string):
            found.add(token.string[1:-1])
    return found


def test_faust_and_aiokafka_are_the_versions_checked() -> None:
    assert (faust.__version__, aiokafka.__version__) == (FAUST, AIOKAFKA), (
        "check every part named in streams/runtime/faust_internals.py against the new version, then update the pins"
    )


def test_every_part_named_exists_on_the_pinned_versions() -> None:
    named = _named()
    assert len(named) > 30  # the docstring is read at all
    missing = [f"{m}:{c}.{a}" for m, c, a in named if not _defined(getattr(importlib.import_module(m), c), a)]
    assert missing == []


def test_the_internals_module_names_every_private_part_it_uses_and_uses_every_part_it_names() -> None:
    used = _names_used(inspect.getsource(faust_internals))
    private = {name for name in used if name.startswith("_") and not name.startswith("__")}
    named = {attribute for _, _, attribute in _named()}
    assert (private - named, named - used) == (set(), set())


def test_no_other_module_of_streams_uses_a_part_named_there() -> None:
    """Of the modules that import faust or aiokafka: a module's own attributes (``self._name = ...``)
    may share a name; a method may not."""
    named = {attribute for _, _, attribute in _named()}
    clients = re.compile(r"^\s*(from|import) (faust|aiokafka|mode)\b", re.MULTILINE)
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if path.name == "faust_internals.py" or not clients.search(source):
            continue
        own = set(re.findall(r"self\.(_\w+)\s*(?::[^=\n]*)?=", source))
        found += [f"{path.relative_to(PACKAGE)}: {name}" for name in (_names_used(source) & named) - own]
    assert found == []


# What the parts rely on, beyond their existence.


def test_the_replaced_commit_method_is_the_one_checked() -> None:
    assert list(inspect.signature(Consumer._commit).parameters) == ["self", "offsets"]
    assert inspect.iscoroutinefunction(Consumer._commit)


def test_the_replaced_drain_and_the_batch_read_are_the_ones_checked() -> None:
    """WholeFetchConsumer overrides the drain in a subclass: faust's own is left as it is, whatever
    was imported before this test."""
    import streams.app  # noqa: F401 - importing the app must change no faust class
    from streams.runtime.faust_internals import WholeFetchConsumer

    assert Consumer._drain_messages.__module__ == "faust.transport.consumer"
    assert list(inspect.signature(Consumer._drain_messages).parameters) == ["self", "fetcher"]
    assert inspect.iscoroutinefunction(Consumer._drain_messages)
    assert "await consumer._drain_messages(self)" in inspect.getsource(faust.transport.consumer.Fetcher)
    assert WholeFetchConsumer._drain_messages is not Consumer._drain_messages
    assert list(inspect.signature(Consumer.getmany).parameters) == ["self", "timeout"]
    assert inspect.isasyncgenfunction(Consumer.getmany)


def test_the_committed_reads_transport_s_private_hooks_are_the_ones_checked() -> None:
    """The isolation level is set on the consumer faust creates (aiokafka reads ``_isolation_level``
    when it starts); the coordinator's offset fetch is replaced on the instance, its generation and
    member id read; the producer's sender is replaced."""
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from aiokafka.producer.sender import Sender, TxnOffsetCommitHandler
    from aiokafka.producer.transaction_manager import TransactionManager
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

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
    the writes their producer buffer is handing over: in ``TableOffsetsConsumer`` and on the
    instances of ``HandoverCountingProducer``, never on faust's classes, whatever was built before."""
    from faust.transport.producer import ProducerBuffer

    from streams.runtime.faust_internals import HandoverCountingProducer
    from streams.runtime.faust_tables import TableConsumer, table_app

    app = table_app(settings, "pin.stats", data_dir=tmp_path, log_name="stats", web_enabled=False)
    assert isinstance(app.consumer, TableConsumer) and isinstance(app.producer, HandoverCountingProducer)
    # faust's own methods, as the subclasses were written against them
    assert Consumer._add_gap.__qualname__ == "Consumer._add_gap"
    assert list(inspect.signature(Consumer._add_gap).parameters) == ["self", "tp", "offset_from", "offset_to"]
    assert "await self._add_gap(tp, r_offset + 1, offset)" in inspect.getsource(Consumer)
    # a commit after a run that starts one past the committed offset: held by TableConsumer.offset_to_commit
    assert "if min(acked) - committed_offset > 1:" in inspect.getsource(Consumer._new_offset)
    assert "getmany = self.getmany" in inspect.getsource(Consumer._drain_messages)  # the fetch noted
    assert ProducerBuffer._send_pending.__qualname__ == "ProducerBuffer._send_pending"
    # the sending task reads the sender once, from the instance: a wrapper set at construction is used
    assert "send_pending = self._send_pending" in inspect.getsource(ProducerBuffer)
    assert app.producer.buffer._send_pending.__qualname__.endswith("send_pending_counted")
