"""The contributions topic's wire form: a batch's contributions packed into one message say exactly
what the messages one per record said."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from streams.messages import OutMessage
from streams.stats.core.wire import MAX_PACKED_BYTES, encode, pack, unpack

TOPIC = "jointuse.stats-contributions.v1"
_contribution = st.fixed_dictionaries(
    {
        "at_ms": st.integers(0, 2**41),
        "policy_version": st.text(max_size=8),
        "tables": st.dictionaries(
            st.text(min_size=1, max_size=6),
            st.fixed_dictionaries(
                {"window": st.just("2026-12-05"), "cells": st.lists(st.lists(st.text(max_size=5), max_size=3))}
            ),
            max_size=3,
        ),
    }
)
_subject = st.text(alphabet="0123456789abcdef", min_size=1, max_size=64)
_contribution_message = st.builds(
    lambda subject, found: OutMessage(TOPIC, subject.encode(), encode(subject, found), []), _subject, _contribution
)
_other_message = st.builds(
    lambda topic, value: OutMessage(topic, b"k", value, []), st.sampled_from(["audit", "deliver"]), st.binary()
)


def _said(messages: list[OutMessage]) -> list[tuple[str, dict]]:
    return [found for m in messages if m.topic == TOPIC for found in unpack(m.key, m.value) if found is not None]


@given(st.lists(st.one_of(_contribution_message, _other_message), max_size=40), st.integers(64, 4096))
def test_packing_changes_no_contribution_and_leaves_every_other_message_as_it_was(
    messages: list[OutMessage], max_bytes: int
) -> None:
    packed = pack(messages, TOPIC, max_bytes)
    assert [m for m in packed if m.topic != TOPIC] == [m for m in messages if m.topic != TOPIC]
    assert _said(packed) == _said(messages)
    for message in packed:
        if message.topic == TOPIC:
            assert message.value is not None and orjson.loads(message.value)  # JSON, never an empty batch
            assert len(message.value) <= max_bytes or len(orjson.loads(message.value)) == 1
            assert message.partition == 0


@given(st.lists(_contribution_message, min_size=1, max_size=200))
def test_a_transaction_s_contributions_are_one_message(messages: list[OutMessage]) -> None:
    (packed,) = pack(messages, TOPIC)
    assert len(packed.value or b"") <= MAX_PACKED_BYTES
    assert [subject for subject, _ in unpack(packed.key, packed.value)] == [m.key.decode() for m in messages]


def test_a_contribution_written_one_per_message_before_packing_still_counts() -> None:
    (found,) = unpack(b"ab12", orjson.dumps({"at_ms": 1, "tables": {}}))
    assert found == ("ab12", {"at_ms": 1, "tables": {}})
    (found,) = unpack(None, encode("cd34", {"at_ms": 2, "tables": {}}))
    assert found is not None and found[0] == "cd34"


def test_what_is_not_a_contribution_is_one_none_each_and_spoils_nothing_beside_it() -> None:
    assert list(unpack(b"ab12", b"not json")) == [None]
    assert list(unpack(b"ab12", None)) == [None]
    assert list(unpack(None, orjson.dumps({"at_ms": 1, "tables": {}}))) == [None]  # no subject anywhere
    batch = orjson.dumps([{"subject": "ab12", "at_ms": 1, "tables": {}}, 7, {"subject": ""}, {"subject": 5}])
    assert list(unpack(b"contributions", batch)) == [
        ("ab12", {"subject": "ab12", "at_ms": 1, "tables": {}}),
        None,
        None,
        None,
    ]
    assert list(unpack(b"\xff", orjson.dumps({"at_ms": 1}))) == [None]  # a key that is not UTF-8
