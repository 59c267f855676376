"""The faust worker without fencing, for `make bench` to measure what fencing costs in the same
run: aiokafka's own transactional producer, which sends a transaction's offsets with the group id
only (TxnOffsetCommit v0), so a paused worker's commit is not refused. Never for use: it is what
the pause test in tests/runtime/test_crash.py shows duplicating inputs."""

from __future__ import annotations

import sys
from typing import Any

from aiokafka import AIOKafkaProducer

import streams.runtime.faust_sink as sink


class UnfencedProducer(AIOKafkaProducer):  # type: ignore[misc]
    async def send_offsets_to_transaction(self, offsets: Any, group: Any) -> None:
        await super().send_offsets_to_transaction(offsets, group.group_id)


def main() -> None:
    sink.GroupFencedProducer = UnfencedProducer  # type: ignore[attr-defined]  # the bench's stand-in
    from faust.cli.faust import cli

    sys.argv = ["faust", "-A", "streams.app", "worker", "-l", "warn", "--without-web"]
    cli()


if __name__ == "__main__":
    main()
