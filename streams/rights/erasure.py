"""Turns rights requests into outputs: for an erasure, tombstones and notices; bad requests to dead letters.

Runs over the rights topic in a consumer group, so each request is handled by one worker, and its
outputs are committed with the request's offset in one transaction (the same batch loop as the
pipeline). The stop itself is applied by every worker's ``RightsView``. The loop holds each request
for the erasure grace before it gets here (``streams.runtime.held``), so that every worker has
applied the stop and no new delivery can follow the tombstones; the consumer keeps polling
meanwhile. Where the subject went is then one lookup in the subject index, which waits until the
index has applied every audit event committed before it (``streams.rights.index_app``). What is
written is built by the rules in ``streams.rights.core.erasure``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from streams.errors import DEPENDENCY_ERRORS
from streams.messages import InMessage
from streams.policy.pseudonym import SubjectKeys
from streams.rights.core.erasure import ErasureOutcome, ErasureStatus, erasure, rights_dead_letter
from streams.rights.core.rules import InvalidRightsRequest, RightsAction, RightsRequest, parse_request
from streams.rights.core.subject_index import SubjectRow
from streams.topology import Topology

RowsLookup = Callable[[frozenset[str]], Iterable[SubjectRow]]  # the index rows of a subject's pseudonyms


class RightsProcessor:
    def __init__(
        self,
        *,
        topology: Topology,
        rows: RowsLookup,
        subjects: SubjectKeys,
        superseded: Callable[[InMessage], bool] = lambda message: False,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        """``superseded`` tells whether a later request of the same subject was read (the loop's
        held messages know): then that one decides, as the latest request does in every rights view."""
        self.topology = topology
        self.rows = rows
        self.subjects = subjects
        self.superseded = superseded
        self.now = now
        self.erased = 0
        self.tombstones = 0

    def process(self, message: InMessage) -> ErasureOutcome:
        """Never raises for anything about the request (it becomes a dead letter, ``unprocessable``
        with the error's class only); a dependency's failure (the subject index) propagates: the
        batch waits and is tried again."""
        try:
            return self._process(message)
        except DEPENDENCY_ERRORS:
            raise
        except Exception as exc:
            return rights_dead_letter(self.topology, message, "unprocessable", type(exc).__name__)

    def _process(self, message: InMessage) -> ErasureOutcome:
        if message.value is None:
            return ErasureOutcome(ErasureStatus.NOTHING_WRITTEN, "tombstone", None, ())
        try:
            request = parse_request(message.value)
        except InvalidRightsRequest as exc:
            return rights_dead_letter(self.topology, message, "invalid_rights_request", str(exc))
        if message.key is None or message.key.decode("utf-8", "replace") != request.key:
            return rights_dead_letter(
                self.topology, message, "key_mismatch", "the message key differs from source:customer_id"
            )
        if request.action is not RightsAction.ERASE:
            # Stop and resume take effect in every worker's rights view; nothing to write.
            return ErasureOutcome(ErasureStatus.NOTHING_WRITTEN, request.action.value, request.source, ())
        if self.superseded(message):
            # Filed again, stopped or resumed during the grace: the later request decides.
            return ErasureOutcome(ErasureStatus.NOTHING_WRITTEN, "superseded", request.source, ())
        return self._erase(request)

    def _erase(self, request: RightsRequest) -> ErasureOutcome:
        subjects = self.subjects.lookup_subjects(request.source, request.customer_id)
        reached: dict[str, str] = {}
        for row in self.rows(subjects):
            reached.update(row.reached())
        outcome = erasure(self.topology, request, reached, self.now())
        self.erased += 1
        self.tombstones += outcome.tombstones
        return outcome
