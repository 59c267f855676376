from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.policy.pseudonym import SubjectKeyError, SubjectKeys


def test_keys_from_lines_current_first_comments_skipped() -> None:
    keys = SubjectKeys.from_lines(["# rotated 2026-11", "the-new-key-0123456789", "", "the-old-key-0123456789"])
    assert keys.current == b"the-new-key-0123456789" and keys.previous == (b"the-old-key-0123456789",)
    old = SubjectKeys(b"the-old-key-0123456789")
    assert keys.lookup_subjects("jcom", "C1") == {keys.subject("jcom", "C1"), old.subject("jcom", "C1")}
    assert keys.key_id != old.key_id and "new-key" not in keys.key_id


@pytest.mark.parametrize("lines", [[], ["# only a comment"], ["short"]])
def test_unusable_keys_are_refused_without_echoing_them(lines: list[str]) -> None:
    with pytest.raises(SubjectKeyError) as caught:
        SubjectKeys.from_lines(lines)
    assert "short" not in str(caught.value)


def test_the_keys_never_show_in_their_representation() -> None:
    keys = SubjectKeys(b"a-current-secret-key-material", (b"an-older-secret-key-material",))
    shown = repr(keys) + str(keys)
    assert "secret" not in shown and keys.key_id in shown


def test_a_pseudonym_is_what_it_was_when_the_audit_events_on_file_were_written() -> None:
    """Audit events, the subject index and statistics rows are keyed by it: it never changes."""
    assert SubjectKeys(b"the-new-key-0123456789").subject("jcom", "C1") == "42fc79ac39b6bb42984fa57c2a05d43f"


@given(st.binary(min_size=16, max_size=80), st.text(max_size=20), st.text(max_size=40))
def test_a_pseudonym_is_the_first_half_of_hmac_sha256_of_source_and_customer_id(
    key: bytes, source: str, customer_id: str
) -> None:
    keys = SubjectKeys(key)
    message = f"{source}\x00{customer_id}".encode("utf-8", "surrogatepass")
    expected = hmac.new(key, message, hashlib.sha256).hexdigest()[:32]
    assert keys.subject(source, customer_id) == expected
    assert keys.subject(source, customer_id) == expected  # the keyed MAC is copied, never used up
    assert keys.lookup_subjects(source, customer_id) == {expected}
    rotated = SubjectKeys(key + b"-rotated", (key,))  # the earlier key still finds what it made
    assert expected in rotated.lookup_subjects(source, customer_id)
    assert rotated.lookup_subjects(source, customer_id) == {rotated.subject(source, customer_id), expected}
