"""Field classification read from Avro schemas (custom field properties ``jointuse.class`` and
``jointuse.item``), compiled into a tree the engine walks.

Every field at every depth must carry a class. A nested field of an ``item`` field may omit
``jointuse.item``: it then belongs to its parent's item.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
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


AVRO_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED_KINDS = frozenset({"record", "enum", "fixed"})
# Decoded records and maps are both dicts: a union holding two of these kinds cannot be projected by
# the Python type of its value, so its values carry the branch the decoder took (``(branch, value)``).
_DICT_KINDS = frozenset({"record", "map"})
_AVRO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    name: str | None = None  # full name of named types (Avro's namespace rules applied)

    @property
    def nullable(self) -> bool:
        return self.kind == "null" or any(b.kind == "null" for b in self.branches)

    @property
    def tagged(self) -> bool:
        """A union whose values are ``(branch name, value)`` pairs in the native form."""
        return self.kind == "union" and sum(b.kind in _DICT_KINDS for b in self.branches) > 1

    @property
    def branch_name(self) -> str:
        """How a union names this branch: the full name of a named type, else the type's kind."""
        return self.name if self.kind in NAMED_KINDS and self.name else self.kind

    def nested_fields(self) -> tuple[FieldNode, ...]:
        """The fields of every record directly inside this type (through arrays, maps and unions)."""
        if self.kind == "record":
            return self.fields
        if self.kind in ("array", "map") and self.items is not None:
            return self.items.nested_fields()
        return tuple(f for b in self.branches for f in b.nested_fields())


@dataclass(frozen=True)
class FieldNode:
    """A schema field with its classification. ``path`` uses ``[]`` for array elements, ``{}`` for map values."""

    name: str
    path: str
    cls: FieldClass
    item: str | None
    type: TypeNode
    has_default: bool
    children: tuple[FieldNode, ...] = field(default=())  # the fields of every record inside the type

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

    @property
    def full_name(self) -> str:
        return self.root.name or ""

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
    """Compile a record schema; unclassified or misclassified fields become ``problems``.

    Raises ``SchemaError`` for what is not valid Avro (an unknown type name, a name defined twice)."""
    if not isinstance(raw, Mapping) or raw.get("type") != "record":
        raise SchemaError("the top-level schema must be an Avro record")
    compiler = _Compiler()
    root = compiler.type_node(raw, path="", parent=None, namespace="")
    return ClassifiedSchema(raw=raw, root=root, problems=tuple(compiler.problems))


def full_name(name: str, namespace: str) -> str:
    """Avro's full name: a dotted name is already full; otherwise the namespace is prepended."""
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _namespace_of(schema: Mapping[str, Any], enclosing: str) -> tuple[str, str]:
    """(full name, namespace for the names inside) of a named type definition."""
    name = str(schema.get("name") or "")
    if "." in name:
        return name, name.rsplit(".", 1)[0]
    namespace = str(schema.get("namespace", enclosing) or "")
    return full_name(name, namespace), namespace


class _Compiler:
    """Named types are compiled again at each reference, in the context of the referring field: a
    child's item is inherited from the field that holds it, wherever the type is reused."""

    def __init__(self) -> None:
        self.definitions: dict[str, tuple[Mapping[str, Any], str]] = {}  # full name -> (definition, its namespace)
        self.problems: list[Violation] = []
        self.compiling: list[str] = []  # named types being compiled: a reference to one of them is recursion

    def resolve(self, reference: str, namespace: str) -> str | None:
        for candidate in (full_name(reference, namespace), reference):
            if candidate in self.definitions:
                return candidate
        return None

    def type_node(self, schema: Any, *, path: str, parent: FieldNode | None, namespace: str) -> TypeNode:
        if isinstance(schema, str):
            if schema in AVRO_PRIMITIVES:
                return TypeNode(kind=schema)
            resolved = self.resolve(schema, namespace)
            if resolved is None:
                raise SchemaError(f"unknown type name at {path or '<root>'}")
            definition, inner_namespace = self.definitions[resolved]
            return self._named(definition, resolved, inner_namespace, path=path, parent=parent)
        if isinstance(schema, list):
            branches = tuple(self.type_node(s, path=path, parent=parent, namespace=namespace) for s in schema)
            names = [b.branch_name for b in branches]
            if len(set(names)) != len(names):
                raise SchemaError(f"a union repeats a type at {path or '<root>'}")
            return TypeNode(kind="union", branches=branches)
        if not isinstance(schema, Mapping):
            raise SchemaError(f"unsupported schema at {path or '<root>'}")
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if kind in NAMED_KINDS:
            name, inner_namespace = _namespace_of(schema, namespace)
            if not name or not all(_AVRO_NAME.fullmatch(part) for part in name.split(".")):
                raise SchemaError(f"a named type has an invalid name at {path or '<root>'}")
            if name in AVRO_PRIMITIVES:
                raise SchemaError(f"a named type redefines a primitive at {path or '<root>'}")
            known = self.definitions.get(name)
            if known is not None and known[0] is not schema:
                raise SchemaError(f"the type name is defined twice at {path or '<root>'}")
            self.definitions[name] = (schema, inner_namespace)
            return self._named(schema, name, inner_namespace, path=path, parent=parent)
        if kind == "array":
            items = self.type_node(schema.get("items"), path=f"{path}[]", parent=parent, namespace=namespace)
            return TypeNode(kind="array", items=items, logical=logical)
        if kind == "map":
            values = self.type_node(schema.get("values"), path=f"{path}{{}}", parent=parent, namespace=namespace)
            return TypeNode(kind="map", items=values, logical=logical)
        if isinstance(kind, (str, list, dict)):
            inner = self.type_node(kind, path=path, parent=parent, namespace=namespace)
            return replace(inner, logical=logical or inner.logical)
        raise SchemaError(f"unsupported schema at {path or '<root>'}")

    def _named(
        self, schema: Mapping[str, Any], name: str, namespace: str, *, path: str, parent: FieldNode | None
    ) -> TypeNode:
        kind = schema["type"]
        logical = schema.get("logicalType")
        if kind == "enum":
            return TypeNode(kind="enum", symbols=frozenset(schema.get("symbols", ())), name=name, logical=logical)
        if kind == "fixed":
            return TypeNode(kind="fixed", size=int(schema.get("size", 0)), name=name, logical=logical)
        if name in self.compiling:
            # Deny by default: a recursive type has no finite projection plan here.
            self.problems.append(Violation(path, "recursive_type", "recursive named types are not supported"))
            return TypeNode(kind="record", name=name)
        self.compiling.append(name)
        try:
            fields = tuple(
                self.field_node(f, prefix=path, parent=parent, namespace=namespace) for f in schema.get("fields", ())
            )
        finally:
            self.compiling.pop()
        names = [f.name for f in fields]
        if len(set(names)) != len(names):
            raise SchemaError(f"a record repeats a field name at {path or '<root>'}")
        return TypeNode(kind="record", fields=fields, name=name, logical=logical)

    def field_node(
        self, spec: Mapping[str, Any], *, prefix: str, parent: FieldNode | None, namespace: str
    ) -> FieldNode:
        if not isinstance(spec, Mapping):
            raise SchemaError(f"a field is not an object at {prefix or '<root>'}")
        name = str(spec.get("name"))
        path = f"{prefix}.{name}" if prefix else name
        if not _AVRO_NAME.fullmatch(name):
            raise SchemaError(f"a field has an invalid name under {prefix or '<root>'}")
        cls, item = self._classification(spec, path, parent)
        stub = FieldNode(
            name=name, path=path, cls=cls, item=item, type=TypeNode(kind="null"), has_default="default" in spec
        )
        type_node = self.type_node(spec.get("type"), path=path, parent=stub, namespace=namespace)
        return FieldNode(
            name=name,
            path=path,
            cls=cls,
            item=item,
            type=type_node,
            has_default="default" in spec,
            children=type_node.nested_fields(),
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

    Every top-level item field becomes optional with a null default, because a recipient gets only
    the items that serve its purposes. Classification properties are kept, so the delivery is itself
    checkable.
    """
    return filtered_schema(
        classified.raw,
        keep=lambda spec, top: spec.get(CLASS_PROPERTY) in SHAREABLE_CLASSES,
        name_suffix=name_suffix,
        doc="What a joint user receives: identifiers and the notice's items only.",
    )


def filtered_schema(
    raw: Mapping[str, Any], *, keep: Callable[[Mapping[str, Any], bool], bool], name_suffix: str, doc: str
) -> dict[str, Any]:
    """A copy of a record schema with the fields ``keep(spec, top)`` accepts, at every depth.

    Top-level fields other than identifiers become optional (null default). Every named type is
    written under its full name; a type whose definition sat in a dropped field is defined again
    where it is first kept, so no reference dangles."""
    return _FilteredSchema(raw, keep).top(name_suffix=name_suffix, doc=doc)


class _FilteredSchema:
    def __init__(self, raw: Mapping[str, Any], keep: Callable[[Mapping[str, Any], bool], bool]) -> None:
        self.raw = raw
        self.keep = keep
        self.definitions: dict[str, tuple[Mapping[str, Any], str]] = {}  # full name -> (definition, enclosing ns)
        _collect_definitions(raw, "", self.definitions)
        self.emitted: set[str] = set()

    def top(self, *, name_suffix: str, doc: str) -> dict[str, Any]:
        name, namespace = _namespace_of(self.raw, "")
        self.emitted.add(name)
        out = {k: v for k, v in self.raw.items() if k not in ("name", "namespace", "fields", "doc", "aliases")}
        out["name"] = f"{name}{name_suffix}"
        out["doc"] = doc
        out["fields"] = self.fields(self.raw.get("fields", ()), namespace, top=True)
        return out

    def fields(self, specs: Any, namespace: str, *, top: bool) -> list[dict[str, Any]]:
        kept = []
        for spec in specs:
            if not self.keep(spec, top):
                continue
            spec = {k: v for k, v in spec.items() if k != "aliases"}
            spec["type"] = self.type(spec["type"], namespace)
            if top and spec.get(CLASS_PROPERTY) != FieldClass.IDENTIFIER:
                spec["type"] = nullable_type(spec["type"])
                spec["default"] = None
            kept.append(spec)
        return kept

    def type(self, schema: Any, namespace: str) -> Any:
        if isinstance(schema, str):
            if schema in AVRO_PRIMITIVES:
                return schema
            resolved = next((c for c in (full_name(schema, namespace), schema) if c in self.definitions), None)
            if resolved is None:
                raise SchemaError("unknown type name in the schema")
            if resolved in self.emitted:
                return resolved
            definition, enclosing = self.definitions[resolved]
            return self.type(definition, enclosing)
        if isinstance(schema, list):
            return [self.type(s, namespace) for s in schema]
        if not isinstance(schema, Mapping):
            return schema
        kind = schema.get("type")
        if kind in NAMED_KINDS:
            name, inner = _namespace_of(schema, namespace)
            if name in self.emitted:
                return name
            self.emitted.add(name)
            out = {k: v for k, v in schema.items() if k not in ("name", "namespace", "aliases")}
            out["name"] = name
            if kind == "record":
                out["fields"] = self.fields(schema.get("fields", ()), inner, top=False)
            return out
        if kind == "array":
            return {**schema, "items": self.type(schema.get("items"), namespace)}
        if kind == "map":
            return {**schema, "values": self.type(schema.get("values"), namespace)}
        if isinstance(kind, (list, dict)) or (isinstance(kind, str) and kind not in AVRO_PRIMITIVES):
            return {**schema, "type": self.type(kind, namespace)}
        return dict(schema)


def _collect_definitions(schema: Any, namespace: str, found: dict[str, tuple[Mapping[str, Any], str]]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect_definitions(branch, namespace, found)
        return
    if not isinstance(schema, Mapping):
        return
    kind = schema.get("type")
    if kind in NAMED_KINDS:
        name, inner = _namespace_of(schema, namespace)
        found.setdefault(name, (schema, namespace))
        for spec in schema.get("fields", ()) if kind == "record" else ():
            if isinstance(spec, Mapping):
                _collect_definitions(spec.get("type"), inner, found)
    elif kind == "array":
        _collect_definitions(schema.get("items"), namespace, found)
    elif kind == "map":
        _collect_definitions(schema.get("values"), namespace, found)
    elif isinstance(kind, (list, dict)):
        _collect_definitions(kind, namespace, found)


def nullable_type(schema: Any) -> Any:
    if isinstance(schema, list):
        return schema if "null" in schema else ["null", *schema]
    return ["null", schema]
