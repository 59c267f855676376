from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from streams.errors import SchemaError
from streams.policy.classification import ClassifiedSchema, FieldClass, classify, delivery_schema, load_schema
from streams.policy.loader import PolicySet
from streams.serde.avro_codec import AvroCodec
from streams.settings import PROJECT_ROOT


@pytest.mark.parametrize("path", sorted((PROJECT_ROOT / "schemas").glob("*.avsc")), ids=lambda p: p.name)
def test_every_shipped_schema_is_fully_classified(path: Path, policies: PolicySet) -> None:
    assert load_schema(path).check_against(policies.latest.item_ids) == []


def test_nested_fields_are_classified_and_inherit_items(schema: ClassifiedSchema) -> None:
    nodes = {n.path: n for n in schema.walk()}
    assert nodes["service_usage[].plan"].item == "service_usage"
    assert nodes["payment_status.status"].cls is FieldClass.ITEM
    assert nodes["claims[].diagnosis"].cls is FieldClass.SENSITIVE
    assert nodes["call_records[].callee_number"].cls is FieldClass.SECRECY_OF_COMMUNICATIONS


def _mutated(schema: ClassifiedSchema, path: list[str], **props: object) -> ClassifiedSchema:
    raw = copy.deepcopy(dict(schema.raw))
    fields = raw["fields"]
    node = None
    for name in path:
        node = next(f for f in fields if f["name"] == name)
        inner = node["type"][1] if isinstance(node["type"], list) else node["type"]
        inner = inner.get("items", inner) if isinstance(inner, dict) else inner
        fields = inner.get("fields", []) if isinstance(inner, dict) else []
    assert node is not None
    for key, value in props.items():
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
    return classify(raw)


@pytest.mark.parametrize(
    ("path", "props", "expected"),
    [
        (["email"], {"jointuse.class": None}, "unclassified at email"),
        (["service_usage", "plan"], {"jointuse.class": None}, "unclassified at service_usage[].plan"),
        (["payment_status", "status"], {"jointuse.class": "public"}, "unknown_class at payment_status.status"),
        (["gender"], {"jointuse.item": None}, "missing_item at gender"),
        (["race"], {"jointuse.item": "gender"}, "item_on_non_item at race"),
    ],
)
def test_classification_problems_name_the_path(
    schema: ClassifiedSchema, path: list[str], props: dict[str, object], expected: str
) -> None:
    mutated = _mutated(schema, path, **{k.replace("_", "."): v for k, v in props.items()})
    assert any(str(p).startswith(expected) for p in mutated.problems), mutated.problems


def test_unknown_item_is_reported(schema: ClassifiedSchema, policies: PolicySet) -> None:
    mutated = _mutated(schema, ["occupation"], **{"jointuse.item": "income"})
    problems = [str(p) for p in mutated.check_against(policies.latest.item_ids)]
    assert problems == ["unknown_item at occupation: item 'income' is not in the notice"]


def test_delivery_schema_holds_only_shareable_fields(schema: ClassifiedSchema) -> None:
    delivery = delivery_schema(schema)
    text = json.dumps(delivery)
    for name in ("call_records", "medical_history", "claims", "consent", "updated_at", "diagnosis"):
        assert f'"{name}"' not in text
    top = {f["name"]: f for f in delivery["fields"]}
    assert top["name"]["type"] == ["null", "string"] and top["name"]["default"] is None
    AvroCodec(delivery)  # a valid Avro schema
    assert classify(delivery).problems == ()


def test_a_named_type_from_a_dropped_field_reused_in_an_item_is_defined_again_in_the_delivery(
    schema: ClassifiedSchema,
) -> None:
    """A v2 that reuses CallRecord (defined in the secrecy field call_records) inside an item field:
    the delivery schema must carry the definition, not a dangling reference."""
    raw = copy.deepcopy(dict(schema.raw))
    raw["fields"].append(
        {
            "name": "disputed_calls",
            "type": ["null", {"type": "array", "items": "CallRecord"}],
            "default": None,
            "jointuse.class": "item",
            "jointuse.item": "contract_information",
        }
    )
    reused = classify(raw)
    nodes = {n.path: n for n in reused.walk()}
    assert nodes["disputed_calls[].callee_number"].cls is FieldClass.SECRECY_OF_COMMUNICATIONS  # its own label
    delivery = delivery_schema(reused)
    codec = AvroCodec(delivery)  # a dangling reference would fail here
    assert codec.decode(codec.encode({"customer_id": "c", "source_company": "jcom", "name": "n"}))["name"] == "n"
    assert "jp.jcom.jointuse.v1.CallRecord" in json.dumps(delivery)


def test_named_types_follow_avros_namespace_rules() -> None:
    inner = {
        "type": "record",
        "name": "Holder",
        "namespace": "b",
        "fields": [
            {
                "name": "x",
                "type": {
                    "type": "record",
                    "name": "Leaf",
                    "fields": [{"name": "v", "type": "string", "jointuse.class": "sensitive"}],
                },
                "jointuse.class": "item",
                "jointuse.item": "name",
            },
            {"name": "y", "type": "Leaf", "jointuse.class": "item", "jointuse.item": "name"},  # b.Leaf
        ],
    }
    raw = {
        "type": "record",
        "name": "Top",
        "namespace": "a",
        "fields": [{"name": "h", "type": inner, "jointuse.class": "item", "jointuse.item": "name"}],
    }
    compiled = classify(raw)
    nodes = {n.path: n for n in compiled.walk()}
    assert nodes["h.y"].type.name == "b.Leaf" and nodes["h.y.v"].cls is FieldClass.SENSITIVE
    # At the top (namespace a), "Leaf" means a.Leaf, which does not exist: not valid Avro.
    raw["fields"].append({"name": "z", "type": "Leaf", "jointuse.class": "item", "jointuse.item": "name"})
    with pytest.raises(SchemaError, match="unknown type name at z"):
        classify(raw)


def test_a_union_of_a_record_and_a_map_is_tagged() -> None:
    raw = {
        "type": "record",
        "name": "Top",
        "fields": [
            {
                "name": "u",
                "jointuse.class": "item",
                "jointuse.item": "name",
                "type": [
                    "null",
                    {
                        "type": "record",
                        "name": "R",
                        "fields": [{"name": "s", "type": "string", "jointuse.class": "sensitive"}],
                    },
                    {"type": "map", "values": "string"},
                ],
            }
        ],
    }
    node = classify(raw).fields[0]
    assert node.type.tagged and [b.branch_name for b in node.type.branches] == ["null", "R", "map"]
