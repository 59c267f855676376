"""Type validation of a record in its native form (as fastavro reads it with logical types stripped:
timestamps and dates are ints). Compiled once per schema into closures; errors name the path and the
rule, never the value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.policy.classification import ClassifiedSchema, FieldNode, TypeNode, Violation

Check = Callable[[Any, str], Violation | None]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def _describe(kind: str) -> str:
    return f"expected {kind}"


def _bounded_int(low: int, high: int, kind: str) -> Check:
    def check(value: Any, path: str) -> Violation | None:
        if type(value) is not int:
            return Violation(path, "wrong_type", _describe(kind))
        if not low <= value <= high:
            return Violation(path, "out_of_range", f"outside the {kind} range")
        return None

    return check


def _of_type(types: tuple[type, ...], kind: str) -> Check:
    def check(value: Any, path: str) -> Violation | None:
        # bool is an int subclass; it must not pass for a number, nor a number for a bool.
        if type(value) not in types:
            return Violation(path, "wrong_type", _describe(kind))
        return None

    return check


def _null(value: Any, path: str) -> Violation | None:
    return None if value is None else Violation(path, "wrong_type", "expected null")


_PRIMITIVES: dict[str, Check] = {
    "null": _null,
    "boolean": _of_type((bool,), "boolean"),
    "int": _bounded_int(*_INT32, "int"),
    "long": _bounded_int(*_INT64, "long"),
    "float": _of_type((float, int), "float"),
    "double": _of_type((float, int), "double"),
    "string": _of_type((str,), "string"),
    "bytes": _of_type((bytes,), "bytes"),
}


def compile_check(node: TypeNode) -> Check:
    """A validator for one type. Unknown keys in records are not errors here: the engine drops them."""
    if node.kind in _PRIMITIVES:
        return _PRIMITIVES[node.kind]
    if node.kind == "record":
        return _record_check(node.fields)
    if node.kind == "array":
        assert node.items is not None
        item_check = compile_check(node.items)

        def check_array(value: Any, path: str) -> Violation | None:
            if type(value) is not list:
                return Violation(path, "wrong_type", "expected array")
            element_path = f"{path}[]"
            for element in value:
                problem = item_check(element, element_path)
                if problem is not None:
                    return problem
            return None

        return check_array
    if node.kind == "map":
        assert node.items is not None
        value_check = compile_check(node.items)

        def check_map(value: Any, path: str) -> Violation | None:
            if type(value) is not dict:
                return Violation(path, "wrong_type", "expected map")
            value_path = f"{path}{{}}"
            for key, element in value.items():
                if type(key) is not str:
                    return Violation(path, "wrong_type", "map keys must be strings")
                problem = value_check(element, value_path)
                if problem is not None:
                    return problem
            return None

        return check_map
    if node.kind == "enum":
        symbols = node.symbols

        def check_enum(value: Any, path: str) -> Violation | None:
            if type(value) is not str or value not in symbols:
                return Violation(path, "not_a_symbol", "not one of the enum's symbols")
            return None

        return check_enum
    if node.kind == "fixed":
        size = node.size

        def check_fixed(value: Any, path: str) -> Violation | None:
            if type(value) is not bytes or len(value) != size:
                return Violation(path, "wrong_type", f"expected {size} bytes")
            return None

        return check_fixed
    if node.kind == "union":
        return _union_check(node)
    raise ValueError(f"unsupported Avro type {node.kind}")


def _union_check(node: TypeNode) -> Check:
    nullable = node.nullable
    others = [compile_check(b) for b in node.branches if b.kind != "null"]
    if len(others) == 1:
        only = others[0]

        def check_optional(value: Any, path: str) -> Violation | None:
            if value is None:
                return None if nullable else Violation(path, "null_not_allowed", "null is not allowed")
            return only(value, path)

        return check_optional

    def check_union(value: Any, path: str) -> Violation | None:
        if value is None and nullable:
            return None
        first: Violation | None = None
        for check in others:
            problem = check(value, path)
            if problem is None:
                return None
            first = first or problem
        return first or Violation(path, "wrong_type", "matches no branch of the union")

    return check_union


_MISSING = object()


def _record_check(fields: tuple[FieldNode, ...]) -> Check:
    checks = [(f, _value_check(f.type)) for f in fields]
    compiled = [(f.name, f.required, f.type.nullable, c, c.__name__ == "check_fast") for f, c in checks]

    def check_record(value: Any, path: str) -> Violation | None:
        if type(value) is not dict:
            return Violation(path, "wrong_type", "expected record")
        for name, required, nullable, check, fast in compiled:
            element = value.get(name, _MISSING)
            if element is None:
                if not nullable:
                    return Violation(_join(path, name), "null_not_allowed", "null where a value is required")
            elif element is _MISSING:
                if required:
                    return Violation(_join(path, name), "missing_required", "required field is missing")
            else:
                problem = check(element, path if fast else _join(path, name))
                if problem is not None:
                    return problem if problem.path else Violation(_join(path, name), problem.rule, problem.detail)
        return None

    return check_record


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


_FAST_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "float": (float, int),
    "double": (float, int),
    "bytes": (bytes,),
}


def _value_check(node: TypeNode) -> Check:
    """The check of a present, non-null value; primitives (optional or not) reduce to a type test whose
    violation is re-pathed by the caller, so no path string is built on the happy path."""
    kinds = [b for b in node.branches if b.kind != "null"] if node.kind == "union" else [node]
    if len(kinds) == 1 and kinds[0].kind in _FAST_TYPES and kinds[0].logical is None:
        types = _FAST_TYPES[kinds[0].kind]
        detail = f"expected {kinds[0].kind}"

        def check_fast(value: Any, path: str) -> Violation | None:
            if type(value) not in types:
                return Violation("", "wrong_type", detail)
            return None

        return check_fast
    if len(kinds) == 1:
        return compile_check(kinds[0])
    return compile_check(node)


def compile_record_check(schema: ClassifiedSchema) -> Check:
    return compile_check(schema.root)
