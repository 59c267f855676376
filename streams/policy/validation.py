"""Type validation of a record in its native form (as fastavro reads it with logical types stripped:
timestamps and dates are ints). Compiled once per schema into closures; errors name the path and the
rule, never the value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.policy.classification import ClassifiedSchema, FieldNode, TypeNode, Violation

Check = Callable[[Any, str], Violation | None]
# Inner checks know nothing of where they are: a violation's path is relative, and each enclosing
# record or array prefixes its part on the way out. No path string is built unless something is wrong.
_Inner = Callable[[Any], Violation | None]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_MISSING = object()
_FIRST_MS, _LAST_MS = -62_135_596_800_000, 253_402_300_799_999  # 0001-01-01 .. 9999-12-31T23:59:59.999 UTC
# The values a logical type can hold: a producer in another language can write any long, but a date
# or a time outside these has no calendar meaning and no Python datetime can hold it.
LOGICAL_RANGES: dict[tuple[str, str], tuple[int, int, str]] = {
    ("int", "date"): (-719_162, 2_932_896, "date"),
    ("long", "timestamp-millis"): (_FIRST_MS, _LAST_MS, "timestamp"),
    ("long", "local-timestamp-millis"): (_FIRST_MS, _LAST_MS, "timestamp"),
    ("long", "timestamp-micros"): (_FIRST_MS * 1000, _LAST_MS * 1000 + 999, "timestamp"),
    ("long", "local-timestamp-micros"): (_FIRST_MS * 1000, _LAST_MS * 1000 + 999, "timestamp"),
    ("int", "time-millis"): (0, 86_399_999, "time of day"),
    ("long", "time-micros"): (0, 86_399_999_999, "time of day"),
}


def _range_of(node: TypeNode) -> tuple[int, int, str]:
    """(low, high, what) of an int or long, narrowed by its logical type."""
    logical = LOGICAL_RANGES.get((node.kind, node.logical or ""))
    if logical is not None:
        return logical
    low, high = _INT32 if node.kind == "int" else _INT64
    return low, high, node.kind


def _join(head: str, tail: str) -> str:
    if not tail:
        return head
    if not head or tail[0] in "[{":
        return head + tail
    return f"{head}.{tail}"


def _within(head: str, problem: Violation) -> Violation:
    return Violation(_join(head, problem.path), problem.rule, problem.detail)


def _bounded_int(low: int, high: int, kind: str) -> _Inner:
    def check(value: Any) -> Violation | None:
        if type(value) is not int:
            return Violation("", "wrong_type", f"expected {kind}")
        if not low <= value <= high:
            return Violation("", "out_of_range", f"outside the {kind} range")
        return None

    return check


def _of_type(types: tuple[type, ...], kind: str) -> _Inner:
    detail = f"expected {kind}"

    def check(value: Any) -> Violation | None:
        # bool is an int subclass; it must not pass for a number, nor a number for a bool.
        if type(value) not in types:
            return Violation("", "wrong_type", detail)
        return None

    return check


def _null(value: Any) -> Violation | None:
    return None if value is None else Violation("", "wrong_type", "expected null")


_PRIMITIVES: dict[str, _Inner] = {
    "null": _null,
    "boolean": _of_type((bool,), "boolean"),
    "float": _of_type((float, int), "float"),
    "double": _of_type((float, int), "double"),
    "string": _of_type((str,), "string"),
    "bytes": _of_type((bytes,), "bytes"),
}


def _compile(node: TypeNode) -> _Inner:
    """A validator for one type. Unknown keys in records are not errors here: the engine drops them."""
    if node.kind in ("int", "long"):
        return _bounded_int(*_range_of(node))
    if node.kind in _PRIMITIVES:
        return _PRIMITIVES[node.kind]
    if node.kind == "record":
        return _record_check(node.fields)
    if node.kind in ("array", "map"):
        assert node.items is not None
        return _container_check(node.kind, _compile(node.items))
    if node.kind == "enum":
        symbols = node.symbols

        def check_enum(value: Any) -> Violation | None:
            if type(value) is not str or value not in symbols:
                return Violation("", "not_a_symbol", "not one of the enum's symbols")
            return None

        return check_enum
    if node.kind == "fixed":
        size = node.size

        def check_fixed(value: Any) -> Violation | None:
            if type(value) is not bytes or len(value) != size:
                return Violation("", "wrong_type", f"expected {size} bytes")
            return None

        return check_fixed
    if node.kind == "union":
        return _union_check(node)
    raise ValueError(f"unsupported Avro type {node.kind}")


def _container_check(kind: str, element_check: _Inner) -> _Inner:
    if kind == "array":

        def check_array(value: Any) -> Violation | None:
            if type(value) is not list:
                return Violation("", "wrong_type", "expected array")
            for element in value:
                problem = element_check(element)
                if problem is not None:
                    return _within("[]", problem)
            return None

        return check_array

    def check_map(value: Any) -> Violation | None:
        if type(value) is not dict:
            return Violation("", "wrong_type", "expected map")
        for key, element in value.items():
            if type(key) is not str:
                return Violation("", "wrong_type", "map keys must be strings")
            problem = element_check(element)
            if problem is not None:
                return _within("{}", problem)
        return None

    return check_map


def _tagged_check(node: TypeNode) -> _Inner:
    """Values of a union of several dict kinds carry their branch: ``(branch name, value)``."""
    nullable = node.nullable
    checks = {b.branch_name: _compile(b) for b in node.branches if b.kind != "null"}

    def check_tagged(value: Any) -> Violation | None:
        if value is None:
            return None if nullable else Violation("", "null_not_allowed", "null is not allowed")
        if type(value) is not tuple or len(value) != 2 or type(value[0]) is not str:
            return Violation("", "untagged_union", "expected a value tagged with its union branch")
        check = checks.get(value[0])
        if check is None:
            return Violation("", "unknown_branch", "the tag names no branch of the union")
        if value[1] is None:
            return Violation("", "null_not_allowed", "a tagged branch holds no value")
        return check(value[1])

    return check_tagged


def _union_check(node: TypeNode) -> _Inner:
    if node.tagged:
        return _tagged_check(node)
    nullable = node.nullable
    others = [_compile(b) for b in node.branches if b.kind != "null"]
    if len(others) == 1:
        only = others[0]

        def check_optional(value: Any) -> Violation | None:
            if value is None:
                return None if nullable else Violation("", "null_not_allowed", "null is not allowed")
            return only(value)

        return check_optional

    def check_union(value: Any) -> Violation | None:
        if value is None and nullable:
            return None
        first: Violation | None = None
        for check in others:
            problem = check(value)
            if problem is None:
                return None
            first = first or problem
        return first or Violation("", "wrong_type", "matches no branch of the union")

    return check_union


def _present_check(node: TypeNode) -> _Inner:
    """The check of a present, non-null value: the union's null branch is the record's business."""
    branches = [b for b in node.branches if b.kind != "null"] if node.kind == "union" and not node.tagged else [node]
    return _compile(branches[0]) if len(branches) == 1 else _compile(node)


def _record_check(fields: tuple[FieldNode, ...]) -> _Inner:
    compiled = [(f.name, f.required, f.type.nullable, _present_check(f.type)) for f in fields]

    def check_record(value: Any) -> Violation | None:
        if type(value) is not dict:
            return Violation("", "wrong_type", "expected record")
        get = value.get
        for name, required, nullable, check in compiled:
            element = get(name, _MISSING)
            if element is None:
                if not nullable:
                    return Violation(name, "null_not_allowed", "null where a value is required")
            elif element is _MISSING:
                if required:
                    return Violation(name, "missing_required", "required field is missing")
            else:
                problem = check(element)
                if problem is not None:
                    return _within(name, problem)
        return None

    return check_record


def compile_check(node: TypeNode) -> Check:
    """A validator of ``node``; violations name the full path below ``path``."""
    inner = _compile(node)

    def check(value: Any, path: str) -> Violation | None:
        problem = inner(value)
        return None if problem is None else _within(path, problem)

    return check


def compile_record_check(schema: ClassifiedSchema, *, decoded: bool = False) -> Check:
    """The record validator, generated as straight-line Python source from the schema: nested records
    and arrays become inline loops with their paths as constants, so the happy path calls nothing.
    Field names are Avro names ([A-Za-z_][A-Za-z0-9_]*) and appear only as ``repr`` literals.

    ``decoded``: the record was decoded with this schema, so its types hold; only what decoding does
    not guarantee is checked (the ranges of dates and times)."""
    generator = _Generator(decoded=decoded)
    generator.emit_type(schema.root, "v0", "", 1)
    source = "def check_record(v0):\n" + "\n".join(generator.lines) + "\n    return None\n"
    namespace: dict[str, Any] = {"V": Violation, "M": _MISSING, "_join": _join, **generator.fallbacks}
    exec(compile(source, "<jointuse record validator>", "exec"), namespace)
    generated: _Inner = namespace["check_record"]

    def check(value: Any, path: str) -> Violation | None:
        problem = generated(value)
        return None if problem is None else _within(path, problem)

    return check


_TYPE_TESTS: dict[str, str] = {
    "string": "type({v}) is not str",
    "boolean": "type({v}) is not bool",
    "bytes": "type({v}) is not bytes",
    "float": "type({v}) is not float and type({v}) is not int",
    "double": "type({v}) is not float and type({v}) is not int",
}


def _has_logical_range(node: TypeNode) -> bool:
    if node.kind in ("int", "long"):
        return (node.kind, node.logical or "") in LOGICAL_RANGES
    if node.kind == "record":
        return any(_has_logical_range(f.type) for f in node.fields)
    if node.kind in ("array", "map") and node.items is not None:
        return _has_logical_range(node.items)
    return any(_has_logical_range(b) for b in node.branches)


class _Generator:
    def __init__(self, *, decoded: bool = False) -> None:
        self.lines: list[str] = []
        self.fallbacks: dict[str, _Inner] = {}
        self.decoded = decoded

    def _line(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def _fail(self, indent: int, path: str, rule: str, detail: str) -> None:
        self._line(indent, f"return V({path!r}, {rule!r}, {detail!r})")

    def emit_type(self, node: TypeNode, var: str, path: str, indent: int) -> None:
        """Statements that return a Violation when ``var`` (present, not null) does not fit ``node``."""
        if self.decoded:
            self._emit_decoded(node, var, path, indent)
            return
        kind = node.kind
        if kind == "union":
            branches = [b for b in node.branches if b.kind != "null"]
            if len(branches) == 1 and not node.tagged:
                self.emit_type(branches[0], var, path, indent)
                return
            self._emit_fallback(node, var, path, indent)
        elif kind in _TYPE_TESTS:
            self._line(indent, f"if {_TYPE_TESTS[kind].format(v=var)}:")
            self._fail(indent + 1, path, "wrong_type", f"expected {kind}")
        elif kind in ("int", "long"):
            low, high, what = _range_of(node)
            self._line(indent, f"if type({var}) is not int:")
            self._fail(indent + 1, path, "wrong_type", f"expected {kind}")
            self._line(indent, f"if not {low} <= {var} <= {high}:")
            self._fail(indent + 1, path, "out_of_range", f"outside the {what} range")
        elif kind == "record":
            self._line(indent, f"if type({var}) is not dict:")
            self._fail(indent + 1, path, "wrong_type", "expected record")
            depth = int(var[1:]) + 1
            for field in node.fields:
                child, child_path = f"v{depth}", _join(path, field.name)
                self._line(indent, f"{child} = {var}.get({field.name!r}, M)")
                self._line(indent, f"if {child} is None:")
                if field.type.nullable:
                    self._line(indent + 1, "pass")
                else:
                    self._fail(indent + 1, child_path, "null_not_allowed", "null where a value is required")
                self._line(indent, f"elif {child} is M:")
                if field.required:
                    self._fail(indent + 1, child_path, "missing_required", "required field is missing")
                else:
                    self._line(indent + 1, "pass")
                self._line(indent, "else:")
                self.emit_type(field.type, child, child_path, indent + 1)
                self._line(indent + 1, "pass")
        elif kind == "array" and node.items is not None:
            self._line(indent, f"if type({var}) is not list:")
            self._fail(indent + 1, path, "wrong_type", "expected array")
            element = f"e{var[1:]}"
            self._line(indent, f"for {element} in {var}:")
            self._emit_element(node.items, element, _join(path, "[]"), indent + 1)
        else:  # maps, enums, fixed: rare in our schemas, checked by the closures
            self._emit_fallback(node, var, path, indent)

    def _emit_decoded(self, node: TypeNode, var: str, path: str, indent: int) -> None:
        """Range checks only, and only on the way to a date or time: a decoded value has its types."""
        if not _has_logical_range(node):
            return
        kind = node.kind
        if kind in ("int", "long"):
            low, high, what = _range_of(node)
            self._line(indent, f"if not {low} <= {var} <= {high}:")
            self._fail(indent + 1, path, "out_of_range", f"outside the {what} range")
        elif kind == "record":
            depth = int(var[1:]) + 1
            for field in node.fields:
                if not _has_logical_range(field.type):
                    continue
                child = f"v{depth}"
                self._line(indent, f"{child} = {var}.get({field.name!r})")
                self._line(indent, f"if {child} is not None:")
                self._emit_decoded(field.type, child, _join(path, field.name), indent + 1)
                self._line(indent + 1, "pass")
        elif kind == "array" and node.items is not None:
            element = f"e{var[1:]}"
            inner = f"v{int(var[1:]) + 1}"
            self._line(indent, f"for {element} in {var}:")
            self._line(indent + 1, f"{inner} = {element}")
            self._line(indent + 1, f"if {inner} is not None:")
            self._emit_decoded(node.items, inner, _join(path, "[]"), indent + 2)
            self._line(indent + 2, "pass")
        elif kind == "union" and not node.tagged and len([b for b in node.branches if b.kind != "null"]) == 1:
            self._emit_decoded(next(b for b in node.branches if b.kind != "null"), var, path, indent)
        else:  # maps and unions of several kinds: the full check, which decoded values pass but for ranges
            self._emit_fallback(node, var, path, indent)

    def _emit_element(self, node: TypeNode, var: str, path: str, indent: int) -> None:
        # An element is validated like a present value, except that null must be allowed by its type.
        depth_var = f"v{int(var[1:]) + 1}"
        self._line(indent, f"{depth_var} = {var}")
        self._line(indent, f"if {depth_var} is None:")
        if node.nullable:
            self._line(indent + 1, "pass")
        else:
            self._fail(indent + 1, path, "null_not_allowed", "null is not allowed")
        self._line(indent, "else:")
        self.emit_type(node, depth_var, path, indent + 1)
        self._line(indent + 1, "pass")

    def _emit_fallback(self, node: TypeNode, var: str, path: str, indent: int) -> None:
        name = f"fallback{len(self.fallbacks)}"
        self.fallbacks[name] = _compile(node)
        problem = f"p{var[1:]}"
        self._line(indent, f"{problem} = {name}({var})")
        self._line(indent, f"if {problem} is not None:")
        self._line(indent + 1, f"return V(_join({path!r}, {problem}.path), {problem}.rule, {problem}.detail)")
