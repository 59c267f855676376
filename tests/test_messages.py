"""Header hygiene (streams/messages.py): a producer's headers decide nothing and reach no output,
except the trace id of a valid W3C traceparent, which is hex by construction."""

from __future__ import annotations

import datetime as dt
import re

from hypothesis import given
from hypothesis import strategies as st

from streams.messages import (
    FORGED_OTHER,
    H_PURPOSES,
    H_REASON,
    H_TRACE_ID,
    H_TRACEPARENT,
    OWN_HEADERS,
    Decided,
    InMessage,
    Run,
    dead_letter,
    forged_headers,
    trace_id,
)
from streams.policy.pseudonym import SubjectKeys
from streams.topology import Topology

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
VALID = f"00-{TRACE}-00f067aa0ba902b7-01".encode()
HEX32 = re.compile(r"[0-9a-f]{32}")


def _message(*headers: tuple[str, bytes | str | None]) -> InMessage:
    return InMessage("t.ingest.jcom.customer.v1", 1, 42, b"k", b"v", 0, list(headers))


def test_a_valid_traceparent_gives_its_trace_id() -> None:
    assert trace_id(_message((H_TRACEPARENT, VALID))) == TRACE
    assert trace_id(_message((H_TRACEPARENT, VALID.decode()))) == TRACE


def test_anything_else_gives_the_trace_id_derived_from_the_input_s_position() -> None:
    derived = trace_id(_message())
    assert HEX32.fullmatch(derived)
    for value in (
        VALID.upper(),  # W3C: lowercase only
        VALID + b" ",
        b"01-" + VALID[3:],  # another version: its format is not ours to guess
        f"00-{'0' * 32}-00f067aa0ba902b7-01".encode(),  # all-zero trace id: invalid
        f"00-{TRACE}-{'0' * 16}-01".encode(),  # all-zero parent id: invalid
        b"\xff" * 55,
        b"",
        None,
    ):
        assert trace_id(_message((H_TRACEPARENT, value))) == derived, value
    assert trace_id(_message((H_TRACEPARENT, VALID), (H_TRACEPARENT, VALID))) == derived  # two: invalid
    assert trace_id(_message((H_TRACE_ID, b"a forged trace id"))) == derived  # a jointuse-* header: ignored


@given(st.lists(st.tuples(st.text(max_size=40), st.one_of(st.none(), st.binary(max_size=80), st.text(max_size=80)))))
def test_the_trace_id_is_always_32_hex_digits_and_never_carries_other_header_bytes(headers: list) -> None:
    message = _message(*headers)
    trace = trace_id(message)
    assert HEX32.fullmatch(trace)
    passed_through = [v for n, v in headers if n == H_TRACEPARENT]
    if trace != trace_id(_message()):  # taken from the input: only from its one traceparent
        assert len(passed_through) == 1
        raw = passed_through[0].encode() if isinstance(passed_through[0], str) else passed_through[0]
        assert raw[3:35].decode() == trace


@given(st.lists(st.tuples(st.text(max_size=40), st.binary(max_size=8))))
def test_forged_headers_are_counted_under_names_the_pipeline_chose(headers: list) -> None:
    forged = forged_headers(_message(*headers))
    assert set(forged) <= OWN_HEADERS | {FORGED_OTHER}
    assert len(forged) == sum(1 for name, _ in headers if name.lower().startswith("jointuse-"))


def test_a_forged_header_of_ours_is_counted_under_its_name_and_another_under_other() -> None:
    forged = forged_headers(_message((H_PURPOSES, b"1,2,3"), ("JointUse-Purposes", b"x"), ("jointuse-\u202e", b"")))
    assert forged == [H_PURPOSES, H_PURPOSES, FORGED_OTHER]


def test_an_input_sent_to_a_deciding_process_arrives_whole() -> None:
    import pickle

    message = InMessage("t.ingest.jcom", 3, 17, b"C1", b"\x00value", 1_700_000_000_000, [("traceparent", b"00-ab")])
    assert pickle.loads(pickle.dumps(message)) == message
    assert pickle.loads(pickle.dumps(InMessage("t", 0, 0, None, None, 0))) == InMessage("t", 0, 0, None, None, 0)


def test_a_dead_letter_stays_in_its_sources_topic_and_an_input_of_no_source_has_none() -> None:
    run = Run(Topology("t"), SubjectKeys(b"a-test-subject-key"), extra_headers=(("x", b"1"),))
    message = InMessage("t.ingest.jcom.customer.v1", 0, 7, b"C1", b"raw", 0, [("traceparent", b"forged")])
    at = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    copy = dead_letter(run, Decided(message, "jcom", None, None, None, "trace", at), "null_key", "why")
    assert copy is not None
    assert (copy.topic, copy.key, copy.value) == ("t.dlq.jcom", b"C1", b"raw")
    assert (H_REASON, b"null_key") in copy.headers and copy.headers[-1] == ("x", b"1")
    assert dead_letter(run, Decided(message, None, None, None, None, "trace", at), "unknown_topic", "why") is None
