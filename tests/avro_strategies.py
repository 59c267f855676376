"""Hypothesis strategies for Avro: generated classified schemas, and native values of any compiled type.

Values of fields whose governed class is not shareable (at any depth above them) carry ``MARK`` in
every string, so a test can search deliveries for it.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from streams.policy.classification import SHAREABLE_CLASSES, FieldClass, TypeNode

MARK = "\u2063LEAK\u2063"  # invisible separator: never in a shareable value
ITEMS = ("name", "address", "email", "service_usage", "payment_status")
_INT = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def values(node: TypeNode, *, marked: bool, extreme: bool = False) -> st.SearchStrategy[Any]:
    """A native value of ``node``; ``extreme`` draws integers over their whole Avro range (dates
    and timestamps included, which no calendar holds), and long, odd strings."""
    kind = node.kind
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind in _INT:
        low, high = _INT[kind]
        if extreme:
            return st.one_of(st.integers(low, high), st.sampled_from([low, high, 0, -1]))
        if node.logical:
            return st.integers(0, 2_000_000_000_000 if kind == "long" else 20_000)
        return st.integers(-1000, 1000)
    if kind in ("float", "double"):
        return st.floats(allow_nan=not extreme, width=32 if kind == "float" else 64)
    if kind == "string":
        text = st.text(max_size=200 if extreme else 6)
        return text.map(lambda s: MARK + s) if marked else text.filter(lambda s: MARK not in s)
    if kind == "bytes":
        return st.binary(max_size=8)
    if kind == "enum":
        return st.sampled_from(sorted(node.symbols))
    if kind == "fixed":
        return st.binary(min_size=node.size, max_size=node.size)
    if kind == "array":
        assert node.items is not None
        return st.lists(values(node.items, marked=marked, extreme=extreme), max_size=3)
    if kind == "map":
        assert node.items is not None
        keys = st.text(max_size=4).filter(lambda s: MARK not in s)
        return st.dictionaries(keys, values(node.items, marked=marked, extreme=extreme), max_size=3)
    if kind == "record":
        return st.fixed_dictionaries(
            {
                f.name: values(f.type, marked=marked or f.cls not in SHAREABLE_CLASSES, extreme=extreme)
                for f in node.fields
            }
        )
    if kind == "union":
        options = []
        for branch in node.branches:
            inner = values(branch, marked=marked, extreme=extreme)
            if node.tagged and branch.kind != "null":
                inner = inner.map(lambda value, name=branch.branch_name: (name, value))
            options.append(inner)
        return st.one_of(options)
    raise AssertionError(f"no strategy for {kind}")


CLASSES = [c.value for c in FieldClass]


@st.composite
def schemas(draw: st.DrawFn) -> dict[str, Any]:
    """A customer-record-like schema: identifiers, then fields of random classes and shapes, among
    them records, arrays, maps, unions of records and maps, and named types defined in one
    namespace and reused by reference from another."""
    builder = _Builder(draw)
    fields = [
        {"name": "customer_id", "type": "string", "jointuse.class": "identifier"},
        {"name": "source_company", "type": "string", "jointuse.class": "identifier"},
    ]
    for index in range(draw(st.integers(1, 6))):
        fields.append(builder.field(f"f{index}", depth=0, top=True))
    return {"type": "record", "name": "Top", "namespace": "gen.top", "fields": fields}


class _Builder:
    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.defined: list[str] = []  # full names of records defined so far, for reuse by reference
        self.count = 0

    def field(self, name: str, *, depth: int, top: bool = False) -> dict[str, Any]:
        cls = self.draw(st.sampled_from(CLASSES[1:]))  # identifiers only at the top
        spec: dict[str, Any] = {"name": name, "jointuse.class": cls, "type": self.type(depth)}
        if cls == "item":
            spec["jointuse.item"] = self.draw(st.sampled_from(ITEMS))
        if self.draw(st.booleans()) or top:
            spec["type"] = (
                ["null", *spec["type"]]
                if isinstance(spec["type"], list) and "null" not in spec["type"]
                else spec["type"]
            )
        return spec

    def type(self, depth: int) -> Any:
        shapes = ["string", "long", "timestamp"]
        if depth < 2:
            shapes += ["record", "array", "map", "optional_record", "record_or_map", "two_records"]
            if self.defined:
                shapes.append("reference")
        shape = self.draw(st.sampled_from(shapes))
        if shape == "timestamp":
            return {"type": "long", "logicalType": "timestamp-millis"}
        if shape in ("string", "long"):
            return shape
        if shape == "record":
            return self.record(depth)
        if shape == "array":
            return {"type": "array", "items": self.record(depth)}
        if shape == "map":
            return {
                "type": "map",
                "values": self.draw(st.sampled_from(["string", "long"]))
                if self.draw(st.booleans())
                else self.record(depth),
            }
        if shape == "optional_record":
            return ["null", self.record(depth)]
        if shape == "record_or_map":
            return ["null", self.record(depth), {"type": "map", "values": "string"}]
        if shape == "two_records":
            return [self.record(depth), self.record(depth)]
        return self.draw(st.sampled_from(self.defined))  # a full name, from wherever it was defined

    def record(self, depth: int) -> dict[str, Any]:
        self.count += 1
        name = f"R{self.count}"
        namespace = self.draw(st.sampled_from([None, "gen.other", "gen.third"]))
        fields = [self.field(f"c{i}", depth=depth + 1) for i in range(self.draw(st.integers(1, 3)))]
        record: dict[str, Any] = {"type": "record", "name": name, "fields": fields}
        if namespace is not None:
            record["namespace"] = namespace
        # The full name follows Avro's rule: the explicit namespace, else the enclosing one. Our
        # records are only referenced by full name, so the enclosing namespace is computed as Avro
        # does by the code under test; here every record without a namespace sits in gen.top or in
        # the namespace of its nearest enclosing record, which we do not track: reuse only the
        # explicitly namespaced ones.
        if namespace is not None:
            self.defined.append(f"{namespace}.{name}")
        return record
