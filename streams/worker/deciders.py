"""Deciding the pipeline's batches in child processes (``JOINTUSE_DECIDE_PROCESSES``).

One core bounds a worker: deciding (decode, the engine, the canary, encode, statistics, the audit
event) takes about three quarters of its time and holds the interpreter lock, so the machine's other
cores stay idle (docs/benchmarks.md). Children decide instead; the worker keeps everything that
reaches Kafka: fetching, the transaction, the audit chain, metrics.

A child only computes. It holds its own ingest processor, built from the worker's settings as every
runtime builds it, decides the inputs it is handed and returns their outcomes. So a child that dies
has written nothing: the batch it was deciding fails, the worker stops (``FatalError``), and its
successor resumes from the last committed transaction. A child never outlives its worker: it exits
once its parent is gone (a worker killed with SIGKILL included), and it runs in its own session:
a signal to the worker's process group (a terminal's Ctrl-C) is the worker's to act on. A
supervisor that signals every process of the worker (systemd's default ``KillMode``) ends the
children too: the batch they decide is not written, and the worker stops as fatal (exit 70);
signal the worker alone (``KillMode=mixed``; Kubernetes signals a container's first process).

What a child cannot see is handed to it with each chunk: which of its inputs' subjects stopped
their use (the rights view is the worker's, read before any record is decided), and nothing else
is asked of the worker while it decides. An outcome comes back without its decision and decoded
record (a third of the cost of sending it back), except for the records the child draws for the
data-quality sample, at its rate: the worker offers those as drawn already.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

from streams.errors import Exit, FatalError
from streams.messages import InMessage, Outcome, customer_key
from streams.policy.loader import load_policies
from streams.processors.ingest import Processor
from streams.serde.registry import Registry
from streams.settings import Settings
from streams.topology import Topology
from streams.worker.parts import pipeline_processor, settle_heap

log = logging.getLogger("jointuse.worker")

# A batch is split so that each chunk keeps a child busy long enough to pay for sending it (about
# 100 µs a record to decide, 15 µs to send and take back); a smaller batch goes to one child.
MIN_CHUNK = 64
START_SECONDS = 120.0  # for every child to build its processor (schemas, codecs, policies)


class DecidingProcesses:
    """``processes`` children that decide the ingest pipeline's batches: the batch loop's ``decide``."""

    def __init__(
        self, settings: Settings, *, worker_id: str, processes: int, is_stopped: Callable[[str, str], bool]
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.processes = processes
        self.is_stopped = is_stopped
        self.topology = Topology(settings.topic_prefix)
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Starts the children and waits until each has built its processor. Raises ``FatalError``
        when one cannot."""
        # spawn: the worker runs client threads (librdkafka's, the rights view's), which a forked
        # child would inherit in whatever state they were.
        self._pool = ProcessPoolExecutor(
            self.processes,
            mp_context=get_context("spawn"),
            initializer=_start_child,
            initargs=(self.settings, self.worker_id, os.getpid()),
        )
        started = time.monotonic()
        try:
            # One call per child is not promised to reach each child, but the pool starts them all
            # at the first call, and any child whose start fails breaks the pool for the rest.
            pids = {f.result(START_SECONDS) for f in [self._pool.submit(_ready) for _ in range(self.processes)]}
        except BrokenProcessPool as exc:
            self.stop(wait=False)
            raise FatalError("a deciding process could not start (its log says why)") from exc
        except TimeoutError as exc:
            self.stop(wait=False)  # the late one exits when its worker does
            raise FatalError(f"a deciding process did not start within {START_SECONDS:.0f} s") from exc
        log.info(
            "deciding processes started",
            extra={"processes": self.processes, "answered": len(pids), "seconds": round(time.monotonic() - started, 1)},
        )

    async def __call__(self, batch: Sequence[InMessage]) -> list[Outcome]:
        pool = self._pool
        if pool is None:
            raise RuntimeError("start() starts the deciding processes before a batch is decided")
        stopped = self._stopped(batch)
        chunks = _chunks(batch, self.processes)
        loop = asyncio.get_running_loop()
        try:  # a child's death breaks the pool: the calls made then fail, and every later one
            decided = await asyncio.gather(*[loop.run_in_executor(pool, _decide, chunk, stopped) for chunk in chunks])
        except BrokenProcessPool as exc:
            raise FatalError("a deciding process died; the batch was not written") from exc
        return [outcome for part in decided for outcome in part]

    def _stopped(self, batch: Sequence[InMessage]) -> frozenset[tuple[str, str]]:
        """The (source, customer id) of the batch's inputs whose use has stopped, asked now: as the
        processor asks once an input, under the rights view's state when the batch is decided."""
        found = set()
        for message in batch:
            source = self.topology.company_of_ingest(message.topic)
            if source is None or message.key is None:
                continue
            key = customer_key(message.key)
            if self.is_stopped(source, key):
                found.add((source, key))
        return frozenset(found)

    def stop(self, *, wait: bool = True) -> None:
        """Ends the children (``wait``: once each has finished the chunk it decides)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)


def _chunks(batch: Sequence[InMessage], processes: int) -> list[Sequence[InMessage]]:
    """The batch in at most ``processes`` runs of consecutive inputs, none smaller than ``MIN_CHUNK``
    (but the only one): outcomes come back in the batch's order by joining them."""
    count = max(1, min(processes, len(batch) // MIN_CHUNK))
    size = -(-len(batch) // count)
    return [batch[start : start + size] for start in range(0, len(batch), size)]


# -- in a child ---------------------------------------------------------------------------------
_processor: Processor | None = None
_stopped_now: frozenset[tuple[str, str]] = frozenset()
_sample_rate = 0.0
_draw = random.Random()


def _start_child(settings: Settings, worker_id: str, parent: int) -> None:
    global _processor, _sample_rate
    # Its own session: a terminal's Ctrl-C or a signal to the worker's process group is the
    # worker's to act on (it stops after its batch, then stops its children). SIGTERM still ends a
    # child: the pool terminates the others with it when one dies.
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_without, args=(parent,), name="parent-watch", daemon=True).start()
    try:
        policies = load_policies(settings.policy_path)
        registry = Registry(settings.registry_conf())
        _processor = pipeline_processor(
            settings,
            policies,
            registry,
            worker_id=worker_id,
            is_stopped=lambda source, key: (source, key) in _stopped_now,
        )
    except Exception as exc:  # one line, not the pool's traceback; the worker then stops (fatal)
        print(f"jointuse: a deciding process cannot start: {exc}", file=sys.stderr, flush=True)
        os._exit(Exit.FATAL)
    _sample_rate = settings.dq_sample_rate
    settle_heap()


def _exit_without(parent: int) -> None:
    """Ends this child once its worker is gone (orphans are adopted: the parent's id changes)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _ready() -> int:
    return os.getpid()


def _decide(batch: Sequence[InMessage], stopped: frozenset[tuple[str, str]]) -> list[Outcome]:
    """The outcomes of ``batch``, in its order. A dependency's failure (the registry) is raised to
    the worker, whose loop waits it out as it does when it decides itself."""
    global _stopped_now
    assert _processor is not None, "the child's initializer builds the processor"
    _stopped_now = stopped
    process, rate, draw, new = _processor.process, _sample_rate, _draw.random, tuple.__new__
    out = []
    for message in batch:
        outcome = process(message)
        if outcome.record is not None and not (rate and draw() < rate):
            outcome = new(Outcome, (*outcome[:_DECISION], None, None, *outcome[_DECISION + 2 :]))
        out.append(outcome)
    return out


# Where an outcome's decision and record are (side by side): set to None without ``_replace``,
# which runs in Python for every outcome.
_DECISION = Outcome._fields.index("decision")
assert Outcome._fields[_DECISION + 1] == "record"
