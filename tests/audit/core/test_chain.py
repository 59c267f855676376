"""The audit chain without a broker: sealing, commit and abort, recovery, signed checkpoints, and a
verifier that finds each kind of tampering at the offset where it shows."""

from __future__ import annotations

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.audit.core.chain import (
    GENESIS,
    AuditChain,
    ChainVerifier,
    Checkpoint,
    Link,
    Rule,
    digest,
    link_of,
    read_checkpoint,
    seal,
    sign_checkpoint,
)

KEY = Ed25519PrivateKey.generate()

Topic = list[list[bytes]]  # partition -> values in offset order


def event(n: int) -> bytes:
    return orjson.dumps({"subject": f"s{n}", "status": "shared", "input": {"offset": n}})


@st.composite
def histories(draw: st.DrawFn) -> tuple[Topic, list[Checkpoint]]:
    """Writers interleaving batches into partitions, some aborted; the committed topic and a
    checkpoint of every chain's head at the end."""
    partitions = draw(st.integers(1, 3))
    writers = [AuditChain(f"w{i}") for i in range(draw(st.integers(1, 3)))]
    topic: Topic = [[] for _ in range(partitions)]
    n = 0
    for _ in range(draw(st.integers(1, 12))):
        writer = draw(st.sampled_from(writers))
        batch = []
        for _ in range(draw(st.integers(1, 4))):
            partition = draw(st.integers(0, partitions - 1))
            batch.append((partition, writer.seal(partition, event(n))))
            n += 1
        if draw(st.booleans()) and draw(st.booleans()):
            writer.rollback()  # aborted: nothing of it is in the topic
            continue
        writer.commit()
        for partition, value in batch:
            topic[partition].append(value)
    if not any(topic):  # every batch aborted: one committed event, so there is something to tamper with
        topic[0].append(writers[0].seal(0, event(n)))
        writers[0].commit()
    checkpoints = [
        Checkpoint(w.writer, partition, head.seq, head.digest, 0)
        for w in writers
        for partition, head in w.committed.items()
    ]
    return topic, checkpoints


def verify(topic: Topic, checkpoints: list[Checkpoint], *, anchored: bool = False) -> ChainVerifier:
    verifier = ChainVerifier(checkpoints, anchored=anchored)
    for partition, values in enumerate(topic):
        for offset, value in enumerate(values):
            verifier.feed(partition, offset, value)
    verifier.finish()
    return verifier


def positions(topic: Topic) -> list[tuple[int, int]]:
    return [(p, o) for p, values in enumerate(topic) for o in range(len(values))]


def writer_of(value: bytes) -> str:
    link = link_of(value)
    assert link is not None
    return link.writer


def next_of_same_writer(values: list[bytes], offset: int) -> int | None:
    writer = writer_of(values[offset])
    return next((o for o in range(offset + 1, len(values)) if writer_of(values[o]) == writer), None)


@settings(max_examples=200, deadline=None)
@given(histories())
def test_an_untouched_topic_verifies(history: tuple[Topic, list[Checkpoint]]) -> None:
    topic, checkpoints = history
    verifier = verify(topic, checkpoints)
    assert verifier.first is None, verifier.violations
    assert verifier.checkpoints_matched == len(checkpoints)


@settings(max_examples=200, deadline=None)
@given(histories(), st.data())
def test_an_altered_event_is_found_where_it_is(history: tuple[Topic, list[Checkpoint]], data: st.DataObject) -> None:
    topic, checkpoints = history
    partition, offset = data.draw(st.sampled_from(positions(topic)))
    value = topic[partition][offset]
    topic[partition][offset] = value.replace(b'"shared"', b'"withheld"')
    first = verify(topic, checkpoints).first
    assert first is not None and (first.partition, first.offset) == (partition, offset)
    assert first.rule in (Rule.ALTERED, Rule.CHECKPOINT_MISMATCH)


@settings(max_examples=200, deadline=None)
@given(histories(), st.data())
def test_a_removed_event_is_found_where_the_gap_is(
    history: tuple[Topic, list[Checkpoint]], data: st.DataObject
) -> None:
    topic, checkpoints = history
    partition, offset = data.draw(st.sampled_from(positions(topic)))
    following = next_of_same_writer(topic[partition], offset)
    del topic[partition][offset]
    first = verify(topic, checkpoints).first
    assert first is not None and first.partition == partition
    if following is None:  # the writer's last event there: only its checkpoint shows the loss
        assert first.rule is Rule.TRUNCATED
    else:
        assert (first.offset, first.rule) == (following - 1, Rule.REMOVED)


@settings(max_examples=200, deadline=None)
@given(histories(), st.data())
def test_events_moved_are_found_where_the_order_breaks(
    history: tuple[Topic, list[Checkpoint]], data: st.DataObject
) -> None:
    topic, checkpoints = history
    partition, offset = data.draw(st.sampled_from(positions(topic)))
    later = next_of_same_writer(topic[partition], offset)
    if later is None:
        return
    values = topic[partition]
    values[offset], values[later] = values[later], values[offset]
    first = verify(topic, checkpoints).first
    assert first is not None and (first.partition, first.offset) == (partition, offset)


@settings(max_examples=200, deadline=None)
@given(histories(), st.data())
def test_an_inserted_event_is_found(history: tuple[Topic, list[Checkpoint]], data: st.DataObject) -> None:
    topic, checkpoints = history
    partition, offset = data.draw(st.sampled_from(positions(topic)))
    kind = data.draw(st.sampled_from(["unchained", "copy", "forged"]))
    values = topic[partition]
    if kind == "unchained":
        values.insert(offset, event(10**6))
    elif kind == "copy":  # an event of the same writer again: its sequence goes back
        values.insert(offset + 1, values[offset])
        offset += 1
    else:  # a forger who knows the chain continues it; the writer's real next event then repeats a seq
        if next_of_same_writer(values, offset) is None:
            return  # after a writer's last checkpoint a continuation is not detectable (docs/audit.md)
        link = link_of(values[offset])
        assert link is not None
        values.insert(offset + 1, seal(event(10**6), Link(link.writer, link.seq + 1, digest(values[offset]))))
        offset += 1
    first = verify(topic, checkpoints).first
    assert first is not None and first.partition == partition
    if kind == "forged":  # shows at the next real event of the writer, or at its checkpoint
        assert first.offset >= offset
    else:
        assert first.offset == offset


def test_an_abort_leaves_the_chain_where_the_last_commit_left_it() -> None:
    chain = AuditChain("w")
    first = chain.seal(0, event(1))
    chain.commit()
    chain.seal(0, event(2))
    chain.rollback()
    again = chain.seal(0, event(2))
    chain.commit()
    assert link_of(again) == Link("w", 1, digest(first))
    assert chain.sealed == 2


def test_a_restarted_writer_continues_from_its_last_committed_event() -> None:
    before = AuditChain("w")
    values = [before.seal(2, event(n)) for n in range(3)]
    before.commit()
    after = AuditChain("w")
    after.recover(2, values[-1])
    values.append(after.seal(2, event(3)))
    after.commit()
    assert verify([[], [], values], []).first is None
    with pytest.raises(ValueError):
        AuditChain("other").recover(0, values[-1])


def test_sealing_keeps_the_event_and_adds_its_link() -> None:
    link = Link("w", 0, GENESIS)
    sealed = seal(b'{"a":1}', link)
    assert orjson.loads(sealed) == {"a": 1, "chain": {"writer": "w", "seq": 0, "prev": GENESIS}}
    assert link_of(sealed) == link
    with pytest.raises(ValueError):
        seal(b"[1]", link)


def test_checkpoints_are_signed_and_a_forged_one_is_refused() -> None:
    checkpoint = Checkpoint("w", 1, 7, "ab" * 32, 1_700_000_000_000)
    value = sign_checkpoint(checkpoint, KEY)
    assert read_checkpoint(value, KEY.public_key()) == checkpoint
    forged = value.replace(b'"seq":7', b'"seq":8')
    assert read_checkpoint(forged, KEY.public_key()) is None
    assert read_checkpoint(value, Ed25519PrivateKey.generate().public_key()) is None
    verifier = ChainVerifier([None])
    assert verifier.finish() is not None and verifier.finish().rule is Rule.BAD_CHECKPOINT  # type: ignore[union-attr]
