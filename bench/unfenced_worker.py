"""The faust worker without fencing, for `make bench` to measure what fencing costs in the same
run: aiokafka's own transactional producer, which sends a transaction's offsets with the group id
only (TxnOffsetCommit v0), so a paused worker's commit is not refused. Never for use: it is what
the pause test in tests/runtime/test_crash.py shows duplicating inputs.

``python -m bench.unfenced_worker WORKER_ID BATCH_SIZE``, exactly once, the other settings from the
``JOINTUSE_`` environment."""

from __future__ import annotations

import sys
from typing import Any

from aiokafka import AIOKafkaProducer

import streams.runtime.faust_sink as sink


class UnfencedProducer(AIOKafkaProducer):  # type: ignore[misc]
    async def send_offsets_to_transaction(self, offsets: Any, group: Any) -> None:
        await super().send_offsets_to_transaction(offsets, group.group_id)


def main() -> None:
    from streams.app import build_pipeline_app
    from streams.runtime.faust_app import run_worker
    from streams.settings import Guarantee, load_settings

    worker_id, batch_size = sys.argv[1], int(sys.argv[2])
    sink.GroupFencedProducer = UnfencedProducer  # type: ignore[attr-defined]  # the bench's stand-in
    settings = load_settings().model_copy(update={"guarantee": Guarantee.EXACTLY_ONCE, "batch_size": batch_size})
    run_worker(build_pipeline_app(settings, worker_id), log_level="warn")


if __name__ == "__main__":
    main()
