"""The generated record validator agrees with the closure-based one on every value, for a schema that
uses every Avro type (maps, enums, fixed, multi-branch unions, arrays of arrays)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.policy.classification import TypeNode, classify
from streams.policy.validation import compile_check, compile_record_check

SCHEMA = {
    "type": "record",
    "name": "Everything",
    "fields": [
        {"name": "s", "type": "string", "jointuse.class": "identifier"},
        {"name": "i", "type": "int", "jointuse.class": "metadata"},
        {"name": "l", "type": ["null", "long"], "default": None, "jointuse.class": "metadata"},
        {"name": "b", "type": "boolean", "default": False, "jointuse.class": "metadata"},
        {"name": "d", "type": ["null", "double"], "default": None, "jointuse.class": "metadata"},
        {
            "name": "e",
            "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "BLUE"]},
            "jointuse.class": "metadata",
        },
        {
            "name": "f",
            "type": ["null", {"type": "fixed", "name": "Two", "size": 2}],
            "default": None,
            "jointuse.class": "metadata",
        },
        {
            "name": "m",
            "type": ["null", {"type": "map", "values": "long"}],
            "default": None,
            "jointuse.class": "metadata",
        },
        {"name": "u", "type": ["null", "string", "long"], "default": None, "jointuse.class": "metadata"},
        {
            "name": "aa",
            "type": ["null", {"type": "array", "items": {"type": "array", "items": "string"}}],
            "default": None,
            "jointuse.class": "metadata",
        },
        {
            "name": "r",
            "type": {
                "type": "record",
                "name": "Inner",
                "fields": [
                    {"name": "x", "type": "string", "jointuse.class": "metadata"},
                    {
                        "name": "xs",
                        "type": {"type": "array", "items": ["null", "Inner2"]},
                        "jointuse.class": "metadata",
                    },
                ],
            },
            "jointuse.class": "metadata",
        },
    ],
}
SCHEMA["fields"][-1]["type"]["fields"][1]["type"]["items"] = [  # type: ignore[index]  # test fixture
    "null",
    {"type": "record", "name": "Inner2", "fields": [{"name": "n", "type": "int", "jointuse.class": "metadata"}]},
]

values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False),
        st.text(max_size=3),
        st.sampled_from(["RED", "BLUE", "GREEN"]),
        st.binary(max_size=3),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["x", "xs", "n", "k"]), inner, max_size=3)
    ),
    max_leaves=8,
)
keys = st.sampled_from([f["name"] for f in SCHEMA["fields"]])  # type: ignore[index]


@settings(max_examples=600, deadline=None)
@given(record=st.dictionaries(keys, values, max_size=11))
def test_generated_and_closure_validators_agree(record: dict[str, Any]) -> None:
    classified = classify(SCHEMA)
    generated = compile_record_check(classified)
    reference = compile_check(TypeNode("record", fields=classified.root.fields))
    assert generated(record, "") == reference(record, "")


def test_a_valid_record_passes_and_paths_are_full() -> None:
    classified = classify(SCHEMA)
    check = compile_record_check(classified)
    good = {"s": "a", "i": 1, "e": "RED", "m": {"k": 2}, "u": 5, "aa": [["x"]], "r": {"x": "y", "xs": [None, {"n": 3}]}}
    assert check(good, "") is None
    bad = {**good, "r": {"x": "y", "xs": [{"n": "3"}]}}
    assert str(check(bad, "")) == "wrong_type at r.xs[].n: expected int"
    assert str(check({**good, "aa": [[1]]}, "")) == "wrong_type at aa[][]: expected string"
    assert str(check({**good, "m": {"k": "v"}}, "")) == "wrong_type at m{}: expected long"
