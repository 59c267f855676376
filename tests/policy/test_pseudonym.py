from __future__ import annotations

import pytest

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
