"""Every worker's copy of the rights topic: the current request per subject, kept up to date.

The compacted rights topic is the state's changelog. Each worker reads all of its partitions (no
consumer group: like a global table, every worker needs every subject, whatever ingest partitions
it owns) and answers ``is_stopped`` from memory. ``start`` returns only once the whole topic has
been read, so a restarted worker never shares a record of a subject who asked to stop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from streams.kafka.follow import TopicFollower
from streams.rights.core.rules import InvalidRightsRequest, RightsState, parse_request

log = logging.getLogger("jointuse.rights")


class RightsView(TopicFollower):
    name = "rights-view"

    def __init__(self, kafka: Mapping[str, Any], topic: str, *, group_id: str) -> None:
        super().__init__(kafka, topic, group_id=group_id)
        self.state = RightsState()
        self.invalid = 0
        self.applied = 0

    def is_stopped(self, source: str, customer_id: str) -> bool:
        return self.state.is_stopped(source, customer_id)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            self.invalid += 1
            return
        text = key.decode("utf-8", "replace")
        if value is None:
            self.state.apply(text, None)
            self.applied += 1
            return
        try:
            request = parse_request(value)
        except InvalidRightsRequest as exc:
            self.invalid += 1
            log.warning("ignored an invalid rights request", extra={"error": str(exc)})
            return
        if request.key != text:
            self.invalid += 1
            log.warning("ignored a rights request whose key differs from its subject")
            return
        self.state.apply(text, request)
        self.applied += 1
