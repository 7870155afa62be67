"""Declarative migration rules between consecutive versions of a subject.

A migration is a list of operations applied in order to an event of the previous version:

=========  ==========================================================================
op         fields
=========  ==========================================================================
rename     ``from``, ``to`` (dotted paths; the same as ``move``)
move       ``from``, ``to`` (dotted paths: moves into or out of nested objects)
add        ``field``, ``default`` (set when the field is absent)
drop       ``field``
cast       ``field``, ``to``: string, int, long, float, double, boolean
derive     ``field``, ``expr``: an expression over the event's fields (simpleeval)
=========  ==========================================================================

At registration :func:`verify` generates instances of the old schema, migrates them and
validates the results against the new schema; the first failure refuses the migration.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from simpleeval import SimpleEval

from registry._schemas import ParsedSchema
from registry._types import SchemaType
from sluicegate.errors import InvalidMigration

Payload = dict[str, Any]
_CASTS: dict[str, Callable[[Any], Any]] = {
    "string": lambda v: (
        v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
    ),
    "int": lambda v: int(float(v)) if isinstance(v, str) else int(v),
    "long": lambda v: int(float(v)) if isinstance(v, str) else int(v),
    "float": float,
    "double": float,
    "boolean": lambda v: (
        v.strip().lower() in ("true", "1", "yes") if isinstance(v, str) else bool(v)
    ),
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "len": len,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "lower": lambda s: s.lower(),
    "upper": lambda s: s.upper(),
    "strip": lambda s: s.strip(),
    "concat": lambda *parts: "".join(str(p) for p in parts),
    "coalesce": lambda *vals: next((v for v in vals if v is not None), None),
}
_REQUIRED = {
    "rename": ("from", "to"),
    "move": ("from", "to"),
    "add": ("field", "default"),
    "drop": ("field",),
    "cast": ("field", "to"),
    "derive": ("field", "expr"),
}
_MISSING = object()


def _path(value: Any, where: str) -> list[str]:
    if not isinstance(value, str) or not value or any(not p for p in value.split(".")):
        raise InvalidMigration(f"{where}: a field path like 'a' or 'a.b' is required")
    return value.split(".")


def validate(ops: Any) -> list[dict[str, Any]]:
    """Check a migration's shape; raises InvalidMigration naming the op and field."""
    if not isinstance(ops, list) or not ops:
        raise InvalidMigration("migration: a non-empty list of operations is required")
    for i, op in enumerate(ops):
        where = f"migration[{i}]"
        if not isinstance(op, dict) or op.get("op") not in _REQUIRED:
            raise InvalidMigration(f"{where}.op: must be one of {', '.join(sorted(_REQUIRED))}")
        for key in _REQUIRED[op["op"]]:
            if key not in op:
                raise InvalidMigration(f"{where}.{key}: required for op '{op['op']}'")
        for key in ("from", "to", "field"):
            if key in op and not (key == "to" and op["op"] == "cast"):
                _path(op[key], f"{where}.{key}")
        if op["op"] == "cast" and op["to"] not in _CASTS:
            raise InvalidMigration(f"{where}.to: cast target must be one of {', '.join(_CASTS)}")
        if op["op"] == "derive":
            if not isinstance(op["expr"], str):
                raise InvalidMigration(f"{where}.expr: an expression string is required")
            try:
                SimpleEval().parse(op["expr"])
            except SyntaxError as exc:
                raise InvalidMigration(f"{where}.expr: invalid expression: {exc.msg}") from exc
    return ops


def _get(payload: Payload, parts: list[str]) -> Any:
    node: Any = payload
    for p in parts:
        if not isinstance(node, dict) or p not in node:
            return _MISSING
        node = node[p]
    return node


def _pop(payload: Payload, parts: list[str]) -> Any:
    node: Any = payload
    for p in parts[:-1]:
        if not isinstance(node, dict) or p not in node:
            return _MISSING
        node = node[p]
    if not isinstance(node, dict):
        return _MISSING
    return node.pop(parts[-1], _MISSING)


def _set(payload: Payload, parts: list[str], value: Any) -> None:
    node = payload
    for p in parts[:-1]:
        child = node.get(p)
        if not isinstance(child, dict):
            child = {}
            node[p] = child
        node = child
    node[parts[-1]] = value


def _compile(op: dict[str, Any]) -> Callable[[Payload], None]:
    kind = op["op"]
    if kind in ("rename", "move"):
        src, dst = op["from"].split("."), op["to"].split(".")

        def move(p: Payload) -> None:
            value = _pop(p, src)
            if value is not _MISSING:
                _set(p, dst, value)

        return move
    target = op["field"].split(".")
    if kind == "add":
        default = op["default"]

        def add(p: Payload) -> None:
            if _get(p, target) is _MISSING:
                _set(p, target, copy.deepcopy(default))

        return add
    if kind == "drop":

        def drop(p: Payload) -> None:
            _pop(p, target)

        return drop
    if kind == "cast":
        convert = _CASTS[op["to"]]

        def cast(p: Payload) -> None:
            value = _get(p, target)
            if value is not _MISSING and value is not None:
                _set(p, target, convert(value))

        return cast
    evaluator = SimpleEval(functions=_FUNCTIONS)
    tree = evaluator.parse(op["expr"])

    def derive(p: Payload) -> None:
        evaluator.names = p
        _set(p, target, evaluator.eval(op["expr"], previously_parsed=tree))

    return derive


def step(ops: list[dict[str, Any]], version: int) -> Callable[[Payload], Payload]:
    """A function migrating one event to ``version`` (it copies, never mutates, its input);
    raises InvalidMigration naming the op that failed."""
    compiled = [(i, op, _compile(op)) for i, op in enumerate(ops)]

    def run(payload: Payload) -> Payload:
        out = copy.deepcopy(payload)
        for i, op, fn in compiled:
            try:
                fn(out)
            except Exception as exc:  # a derive expression is the subject owner's code
                # whatever it raises on a wrongly typed value is a failed migration
                raise InvalidMigration(
                    f"migration to version {version}, op {i} ({op['op']}): {exc}"
                ) from exc
        return out

    return run


def _json_failure(
    run: Callable[[Payload], Payload], old: ParsedSchema, new: ParsedSchema
) -> str | None:
    """Generate instances of the old JSON Schema with Hypothesis, migrate them and
    validate against the new one; the first (shrunk) failure, or None."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis.errors import HypothesisException
    from jsonschema import Draft7Validator, validators

    from registry._instances import instances

    validator = validators.validator_for(new.document, default=Draft7Validator)(new.document)
    failures: list[str] = []

    @settings(
        max_examples=60,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
    )
    @given(instances(old.document))
    def probe(instance: Any) -> None:
        if not isinstance(instance, dict):
            return
        try:
            result = run(instance)
        except InvalidMigration as exc:
            failures.append(f"{exc.message}; old event {instance!r}")
            raise AssertionError from exc
        errors = sorted(validator.iter_errors(result), key=lambda e: list(e.path))
        if errors:
            where = "/" + "/".join(str(p) for p in errors[0].absolute_path)
            failures.append(
                f"old event {instance!r} migrates to {result!r}, which the new schema rejects "
                f"at {where}: {errors[0].message}"
            )
            raise AssertionError(failures[-1])

    try:
        probe()
    except (AssertionError, ExceptionGroup):  # Hypothesis groups distinct failures
        return failures[-1] if failures else "a migrated event is invalid"
    except HypothesisException as exc:
        return f"cannot generate instances of the old schema to check the migration: {exc}"
    return None


def _avro_failure(
    run: Callable[[Payload], Payload], old: ParsedSchema, new: ParsedSchema
) -> str | None:
    """Generate random instances of the old Avro schema, migrate and validate them."""
    from fastavro.utils import generate_many
    from fastavro.validation import ValidationError
    from fastavro.validation import validate as avro_validate

    for instance in generate_many(old.parsed, 60):
        if not isinstance(instance, dict):
            return None
        try:
            result = run(instance)
        except InvalidMigration as exc:
            return f"{exc.message}; old event {instance!r}"
        try:
            avro_validate(result, new.parsed, raise_errors=True)
        except ValidationError as exc:
            return (
                f"old event {instance!r} migrates to {result!r}, which the new schema "
                f"rejects: {'; '.join(str(e) for e in exc.errors) or exc}"
            )
    return None


def verify(
    ops: list[dict[str, Any]], old: ParsedSchema, new: ParsedSchema, *, from_version: int
) -> None:
    """Raise InvalidMigration unless ``ops`` turn generated valid instances of ``old`` into
    valid instances of ``new``."""
    run = step(ops, from_version + 1)
    check = _avro_failure if old.schema_type is SchemaType.AVRO else _json_failure
    if new.schema_type is not old.schema_type:
        raise InvalidMigration("a migration cannot change the schema type")
    failure = check(run, old, new)
    if failure:
        raise InvalidMigration(
            f"the migration from version {from_version} does not produce valid events of the "
            f"new schema: {failure}"
        )
