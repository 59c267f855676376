"""Field classification read from Avro schemas (custom field properties ``jointuse.class`` and
``jointuse.item``), compiled into a tree the engine walks.

Every field at every depth must carry a class. A nested field of an ``item`` field may omit
``jointuse.item``: it then belongs to its parent's item.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from streams.errors import SchemaError

CLASS_PROPERTY = "jointuse.class"
ITEM_PROPERTY = "jointuse.item"


class FieldClass(StrEnum):
    """What a field is, for the purposes of joint use."""

    IDENTIFIER = "identifier"
    ITEM = "item"
    SECRECY_OF_COMMUNICATIONS = "secrecy_of_communications"
    SENSITIVE = "sensitive"
    INSURER_ONLY = "insurer_only"
    CONSENT = "consent"
    METADATA = "metadata"


# Classes whose values must never leave the source company under joint use.
PROTECTED_CLASSES = frozenset({FieldClass.SECRECY_OF_COMMUNICATIONS, FieldClass.SENSITIVE, FieldClass.INSURER_ONLY})
SHAREABLE_CLASSES = frozenset({FieldClass.IDENTIFIER, FieldClass.ITEM})
UNKNOWN = "unknown"  # class reported for a field that is not in the schema


@dataclass(frozen=True)
class Violation:
    """A rule broken at a field path. ``rule`` is a stable code; ``detail`` never holds a value."""

    path: str
    rule: str
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.rule} at {self.path or '<record>'}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass(frozen=True)
class TypeNode:
    """An Avro type, compiled. ``kind`` is the Avro type name (``union`` for unions)."""

    kind: str
    fields: tuple[FieldNode, ...] = ()  # record
    items: TypeNode | None = None  # array items, map values
    branches: tuple[TypeNode, ...] = ()  # union
    symbols: frozenset[str] = frozenset()  # enum
    size: int = 0  # fixed
    logical: str | None = None
    name: str | None = None  # named types

    @property
    def nullable(self) -> bool:
        return self.kind == "null" or any(b.kind == "null" for b in self.branches)

    def record_branch(self) -> TypeNode | None:
        """The record (directly, inside an array, or as a union branch), for walking children."""
        if self.kind == "record":
            return self
        if self.kind in ("array", "map") and self.items is not None:
            return self.items.record_branch()
        for branch in self.branches:
            found = branch.record_branch()
            if found is not None:
                return found
        return None


@dataclass(frozen=True)
class FieldNode:
    """A schema field with its classification. ``path`` uses ``[]`` for array elements, ``{}`` for map values."""

    name: str
    path: str
    cls: FieldClass
    item: str | None
    type: TypeNode
    has_default: bool
    children: tuple[FieldNode, ...] = field(default=())

    @property
    def required(self) -> bool:
        return not self.type.nullable and not self.has_default


@dataclass(frozen=True)
class ClassifiedSchema:
    """An Avro record schema with every field classified."""

    raw: Mapping[str, Any]
    root: TypeNode
    problems: tuple[Violation, ...]

    @property
    def fields(self) -> tuple[FieldNode, ...]:
        return self.root.fields

    def walk(self) -> Iterator[FieldNode]:
        stack = list(reversed(self.root.fields))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def items_used(self) -> frozenset[str]:
        return frozenset(n.item for n in self.walk() if n.cls is FieldClass.ITEM and n.item)

    def check_against(self, item_ids: frozenset[str]) -> list[Violation]:
        """Problems of the schema itself plus item ids the policy does not know."""
        found = list(self.problems)
        for node in self.walk():
            if node.cls is FieldClass.ITEM and node.item and node.item not in item_ids:
                found.append(Violation(node.path, "unknown_item", f"item {node.item!r} is not in the notice"))
        return found


def load_schema(path: Path | str) -> ClassifiedSchema:
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path}: cannot read the schema ({exc.__class__.__name__})") from exc
    return classify(raw)


def classify(raw: Mapping[str, Any]) -> ClassifiedSchema:
    """Compile a record schema; unclassified or misclassified fields become ``problems``."""
    if not isinstance(raw, Mapping) or raw.get("type") != "record":
        raise SchemaError("the top-level schema must be an Avro record")
    compiler = _Compiler(str(raw.get("namespace") or ""))
    root = compiler.type_node(raw, path="", parent=None)
    return ClassifiedSchema(raw=raw, root=root, problems=tuple(compiler.problems))


class _Compiler:
    def __init__(self, namespace: str) -> None:
        self.named: dict[str, TypeNode] = {}
        self.problems: list[Violation] = []
        self.namespace = namespace

    def type_node(self, schema: Any, *, path: str, parent: FieldNode | None) -> TypeNode:
        if isinstance(schema, str):
            if schema in self.named:
                return self.named[schema]
            qualified = f"{self.namespace}.{schema}" if self.namespace else schema
            if qualified in self.named:
                return self.named[qualified]
            return TypeNode(kind=schema)
        if isinstance(schema, list):
            return TypeNode(kind="union", branches=tuple(self.type_node(s, path=path, parent=parent) for s in schema))
        if not isinstance(schema, Mapping):
            raise SchemaError(f"unsupported schema at {path or '<root>'}")
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if kind == "record":
            fields = tuple(self.field_node(f, prefix=path, parent=parent) for f in schema.get("fields", ()))
            node = TypeNode(kind="record", fields=fields, name=schema.get("name"))
            self._remember(schema, node)
            return node
        if kind == "array":
            return TypeNode(kind="array", items=self.type_node(schema["items"], path=f"{path}[]", parent=parent))
        if kind == "map":
            return TypeNode(kind="map", items=self.type_node(schema["values"], path=f"{path}{{}}", parent=parent))
        if kind == "enum":
            node = TypeNode(kind="enum", symbols=frozenset(schema.get("symbols", ())), name=schema.get("name"))
            self._remember(schema, node)
            return node
        if kind == "fixed":
            node = TypeNode(kind="fixed", size=int(schema.get("size", 0)), logical=logical, name=schema.get("name"))
            self._remember(schema, node)
            return node
        if isinstance(kind, (str, list, dict)):
            inner = self.type_node(kind, path=path, parent=parent)
            return TypeNode(
                kind=inner.kind,
                fields=inner.fields,
                items=inner.items,
                branches=inner.branches,
                symbols=inner.symbols,
                size=inner.size,
                logical=logical or inner.logical,
                name=inner.name,
            )
        raise SchemaError(f"unsupported schema at {path or '<root>'}")

    def _remember(self, schema: Mapping[str, Any], node: TypeNode) -> None:
        name = schema.get("name")
        if not name:
            return
        namespace = schema.get("namespace") or self.namespace
        self.named[name] = node
        if namespace and "." not in name:
            self.named[f"{namespace}.{name}"] = node

    def field_node(self, spec: Mapping[str, Any], *, prefix: str, parent: FieldNode | None) -> FieldNode:
        name = str(spec.get("name"))
        path = f"{prefix}.{name}" if prefix else name
        cls, item = self._classification(spec, path, parent)
        stub = FieldNode(
            name=name, path=path, cls=cls, item=item, type=TypeNode(kind="null"), has_default="default" in spec
        )
        type_node = self.type_node(spec.get("type"), path=path, parent=stub)
        record = type_node.record_branch()
        children = record.fields if record is not None else ()
        return FieldNode(
            name=name, path=path, cls=cls, item=item, type=type_node, has_default="default" in spec, children=children
        )

    def _classification(
        self, spec: Mapping[str, Any], path: str, parent: FieldNode | None
    ) -> tuple[FieldClass, str | None]:
        declared = spec.get(CLASS_PROPERTY)
        if declared is None:
            self.problems.append(Violation(path, "unclassified", f"field has no {CLASS_PROPERTY} property"))
            # Deny by default: an unclassified field is treated as protected.
            return FieldClass.SENSITIVE, None
        try:
            cls = FieldClass(declared)
        except ValueError:
            self.problems.append(
                Violation(
                    path, "unknown_class", f"{CLASS_PROPERTY} is not one of {sorted(c.value for c in FieldClass)}"
                )
            )
            return FieldClass.SENSITIVE, None
        item = spec.get(ITEM_PROPERTY)
        if cls is FieldClass.ITEM:
            if item is None and parent is not None and parent.cls is FieldClass.ITEM:
                item = parent.item
            if not item:
                self.problems.append(Violation(path, "missing_item", f"an item field needs {ITEM_PROPERTY}"))
                return FieldClass.SENSITIVE, None
        elif item is not None:
            self.problems.append(Violation(path, "item_on_non_item", f"{ITEM_PROPERTY} is only for class item"))
        return cls, (str(item) if cls is FieldClass.ITEM else None)


def delivery_schema(classified: ClassifiedSchema, *, name_suffix: str = "Delivery") -> dict[str, Any]:
    """The schema of what recipients receive: identifiers and items only, at every depth.

    Every item field becomes optional with a null default, because a recipient gets only the items
    that serve its purposes. Classification properties are kept, so the delivery is itself checkable.
    """
    raw = copy.deepcopy(dict(classified.raw))
    raw["name"] = f"{raw['name']}{name_suffix}"
    raw["doc"] = "What a joint user receives: identifiers and the notice's items only."
    raw["fields"] = _shareable_fields(raw["fields"], top=True)
    return raw


def _shareable_fields(fields: list[dict[str, Any]], *, top: bool) -> list[dict[str, Any]]:
    kept = []
    for spec in fields:
        cls = spec.get(CLASS_PROPERTY)
        if cls not in SHAREABLE_CLASSES:
            continue
        spec = dict(spec)
        spec["type"] = _shareable_type(spec["type"])
        if top and cls == FieldClass.ITEM:
            spec["type"] = nullable_type(spec["type"])
            spec["default"] = None
        kept.append(spec)
    return kept


def _shareable_type(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_shareable_type(s) for s in schema]
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "record":
            return {**schema, "fields": _shareable_fields(schema["fields"], top=False)}
        if kind == "array":
            return {**schema, "items": _shareable_type(schema["items"])}
        if kind == "map":
            return {**schema, "values": _shareable_type(schema["values"])}
    return schema


def nullable_type(schema: Any) -> Any:
    if isinstance(schema, list):
        return schema if "null" in schema else ["null", *schema]
    return ["null", schema]
