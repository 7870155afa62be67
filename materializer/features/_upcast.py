"""Upcasting at read time: a payload field of the subject's latest version, read from
``events`` in ClickHouse SQL whatever version each event is stored under.

The registry's read plan (:mod:`registry._readplan`) says, per stored version, where a
latest field comes from: a field of that version (perhaps under an old name), a default,
a cast, or a ``derive`` expression. This module compiles that plan into one
``multiIf(payload_version = v, ..., <the field as stored>)`` per field, so materialized
views, backfills, rebuilds and training sets all see an old event exactly as
``POST /v1/subjects/{s}/upcast`` returns it, while the stored event stays as it was.

Why at read time and not by rewriting `events`: the log is append-only and first write
wins, so a stored event is never replaced; features compiled before a new version keep
their SQL (and their values for the events they saw); and the same compiled expression
serves the views at insert and the backfills over the whole log.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

from sqlglot import exp

from materializer.features._fields import FieldType, schema_fields
from registry._readplan import Absent, Cast, Literal, OrElse, ReadPlan, Source, Stored
from sluicegate.errors import InvalidDefinition
from sluicegate.sqlgate import DIALECT

__all__ = [
    "FieldReader",
    "Untranslatable",
    "field_reader",
    "field_sql",
    "plan_reader",
    "upcast_field_sql",
]


class Untranslatable(ValueError):
    """A migration expression with no ClickHouse equivalent."""


def _lit(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return exp.Literal.string(value).sql(dialect=DIALECT)
    raise Untranslatable(f"a default of type {type(value).__name__}")


def _keys(path: tuple[str, ...]) -> str:
    return ", ".join(exp.Literal.string(p).sql(dialect=DIALECT) for p in path)


def field_sql(path: str, ftype: FieldType | None) -> str:
    """SQL reading payload field ``path`` typed as stored, or the envelope column of that
    name (``ftype`` None)."""
    if ftype is None:
        return path
    type_lit = exp.Literal.string(ftype.clickhouse_type).sql(dialect=DIALECT)
    return f"JSONExtract(payload, {_keys(tuple(path.split('.')))}, {type_lit})"


# The kind of a value in the expression compiler: how Python would treat it.
_KIND = {"Int64": "int", "Float64": "float", "Bool": "bool", "String": "str"}


class _Compiler:
    """One stored version's sources -> SQL, each value with its Python kind."""

    def __init__(self, fields: Mapping[str, FieldType], fallback: FieldType) -> None:
        self._fields = fields  # the stored version's fields and types
        # a field its schema does not name (JSON Schema allows extra properties) is read
        # as the latest field's type
        self._fallback = fallback

    def stored(self, path: tuple[str, ...]) -> tuple[str, str]:
        ftype = self._fields.get(".".join(path), self._fallback)
        return field_sql(".".join(path), ftype), _KIND.get(ftype.base, "other")

    def present(self, source: Source) -> str:
        if isinstance(source, Stored):
            return f"JSONHas(payload, {_keys(source.path)})"
        if isinstance(source, Absent):
            return "false"
        if isinstance(source, Cast):
            return self.present(source.inner)
        if isinstance(source, OrElse):
            return f"({self.present(source.first)} OR {self.present(source.default)})"
        return "true"

    def value(self, source: Source) -> tuple[str, str]:
        if isinstance(source, Stored):
            return self.stored(source.path)
        if isinstance(source, Literal):
            kind = {bool: "bool", int: "int", float: "float", str: "str"}.get(
                type(source.value), "null"
            )
            return _lit(source.value), kind
        if isinstance(source, Absent):
            return "NULL", "null"
        if isinstance(source, OrElse):
            first, kind = self.value(source.first)
            default, dkind = self.value(source.default)
            return f"if({self.present(source.first)}, {first}, {default})", kind or dkind
        if isinstance(source, Cast):
            inner, kind = self.value(source.inner)
            return _cast(source.to, inner, kind)
        return _Expression(self, dict(source.names)).compile(source.expr)


def _cast(to: str, sql: str, kind: str) -> tuple[str, str]:
    """``registry._migration``'s casts: applied to present, non-null values."""
    if to in ("int", "long"):
        conv = f"toInt64(toFloat64OrNull({sql}))" if kind == "str" else f"toInt64({sql})"
        return conv, "int"
    if to in ("float", "double"):
        conv = f"toFloat64OrNull({sql})" if kind == "str" else f"toFloat64({sql})"
        return conv, "float"
    if to == "boolean":
        if kind == "str":
            return f"(lower(trimBoth({sql})) IN ('true', '1', 'yes'))", "bool"
        return f"({sql} != 0)", "bool"
    return _to_str(sql, kind), "str"


def _typed(sql: str, ftype: FieldType) -> str:
    """``sql`` as ``ftype``'s ClickHouse type; NULL as that type's default when it is not
    nullable (what ``JSONExtract`` gives for a missing field)."""
    target = ftype.clickhouse_type
    if target.startswith(("Nullable(", "Array(", "Map(")):
        return f"CAST({sql}, {exp.Literal.string(target).sql(dialect=DIALECT)})"
    nullable = exp.Literal.string(f"Nullable({target})").sql(dialect=DIALECT)
    plain = exp.Literal.string(target).sql(dialect=DIALECT)
    return f"ifNull(CAST({sql}, {nullable}), defaultValueOfTypeName({plain}))"


def _to_str(sql: str, kind: str, *, python_bool: bool = False) -> str:
    if kind == "str":
        return sql
    if kind == "bool":
        return f"if({sql}, 'True', 'False')" if python_bool else f"if({sql}, 'true', 'false')"
    if kind == "int":
        return f"toString({sql})"
    raise Untranslatable(f"text of a {kind} value")


def _truthy(sql: str, kind: str) -> str:
    if kind == "str":
        return f"({sql} != '')"
    if kind in ("int", "float"):
        return f"({sql} != 0)"
    return sql


_BINARY: dict[type[ast.operator], str] = {ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_COMPARE: dict[type[ast.cmpop], str] = {
    ast.Eq: "=",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}


class _Expression:
    """A ``derive`` expression (the subset of Python simpleeval evaluates that has an
    exact ClickHouse equivalent) -> SQL."""

    def __init__(self, compiler: _Compiler, names: dict[str, Source]) -> None:
        self._compiler = compiler
        self._names = names

    def compile(self, text: str) -> tuple[str, str]:
        return self._node(ast.parse(text, mode="eval").body)

    def _node(self, node: ast.expr) -> tuple[str, str]:
        handler: Callable[[ast.expr], tuple[str, str]] | None = getattr(
            self, f"_{type(node).__name__}", None
        )
        if handler is None:
            raise Untranslatable(f"{type(node).__name__} in a derive expression")
        return handler(node)

    def _Constant(self, node: ast.expr) -> tuple[str, str]:
        assert isinstance(node, ast.Constant)
        return self._compiler.value(Literal(node.value))

    def _Name(self, node: ast.expr) -> tuple[str, str]:
        assert isinstance(node, ast.Name)
        if node.id in ("True", "False", "None"):
            return self._compiler.value(Literal({"True": True, "False": False}.get(node.id)))
        source = self._names.get(node.id)
        if source is None:
            raise Untranslatable(f"name {node.id!r}")
        return self._compiler.value(source)

    def _BinOp(self, node: ast.expr) -> tuple[str, str]:
        assert isinstance(node, ast.BinOp)
        (left, lk), (right, rk) = self._node(node.left), self._node(node.right)
        if isinstance(node.op, ast.Add):
            if lk == rk == "str":
                return f"concat({left}, {right})", "str"
            if lk in ("int", "float") and rk in ("int", "float"):
                return f"({left} + {right})", "float" if "float" in (lk, rk) else "int"
            raise Untranslatable("+ of these values")
        if lk not in ("int", "float") or rk not in ("int", "float"):
            raise Untranslatable("arithmetic on non-numbers")
        kind = "float" if "float" in (lk, rk) else "int"
        if isinstance(node.op, ast.Div):
            return f"({left} / {right})", "float"
        if isinstance(node.op, ast.FloorDiv):
            result = f"floor({left} / {right})"
            return (f"toInt64({result})" if kind == "int" else result), kind
        if isinstance(node.op, ast.Mod) and kind == "int":
            return f"((({left} % {right}) + {right}) % {right})", "int"  # Python's sign
        op = _BINARY.get(type(node.op))
        if op is None:
            raise Untranslatable(f"operator {type(node.op).__name__}")
        return f"({left} {op} {right})", kind

    def _UnaryOp(self, node: ast.expr) -> tuple[str, str]:
        assert isinstance(node, ast.UnaryOp)
        value, kind = self._node(node.operand)
        if isinstance(node.op, ast.USub) and kind in ("int", "float"):
            return f"(-{value})", kind
        if isinstance(node.op, ast.Not):
            return f"(NOT {_truthy(value, kind)})", "bool"
        raise Untranslatable(f"unary {type(node.op).__name__}")

    def _Compare(self, node: ast.expr) -> tuple[str, str]:
        assert isinstance(node, ast.Compare)
        if len(node.ops) != 1:
            raise Untranslatable("chained comparisons")
        op = _COMPARE.get(type(node.ops[0]))
        if op is None:
            raise Untranslatable(f"comparison {type(node.ops[0]).__name__}")
        (left, lk), (right, rk) = self._node(node.left), self._node(node.comparators[0])
        if (lk == "str") != (rk == "str"):
            raise Untranslatable("comparing text with a number")
        return f"({left} {op} {right})", "bool"

    def _BoolOp(self, node: ast.expr) -> tuple[str, str]:
        assert isinstance(node, ast.BoolOp)
        parts = [self._node(v) for v in node.values]
        if any(k != "bool" for _, k in parts):
            raise Untranslatable("and/or of non-booleans")
        joiner = " AND " if isinstance(node.op, ast.And) else " OR "
        return "(" + joiner.join(p for p, _ in parts) + ")", "bool"

    def _IfExp(self, node: ast.expr) -> tuple[str, str]:
        assert isinstance(node, ast.IfExp)
        test, tk = self._node(node.test)
        (body, bk), (orelse, ok) = self._node(node.body), self._node(node.orelse)
        if bk != ok and "null" not in (bk, ok):
            raise Untranslatable("branches of different kinds")
        return f"if({_truthy(test, tk)}, {body}, {orelse})", bk if bk != "null" else ok

    def _Call(self, node: ast.expr) -> tuple[str, str]:
        assert isinstance(node, ast.Call)
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise Untranslatable("this call")
        args = [self._node(a) for a in node.args]
        name = node.func.id
        one = args[0] if len(args) == 1 else None
        if name == "len" and one and one[1] == "str":
            return f"toInt64(lengthUTF8({one[0]}))", "int"
        if name in ("lower", "upper") and one and one[1] == "str":
            return f"{name}UTF8({one[0]})", "str"
        if name == "strip" and one and one[1] == "str":
            return f"replaceRegexpAll({one[0]}, '^\\\\s+|\\\\s+$', '')", "str"
        if name == "abs" and one and one[1] in ("int", "float"):
            return f"abs({one[0]})", one[1]
        if name == "str" and one:
            return _to_str(one[0], one[1], python_bool=True), "str"
        if name == "int" and one and one[1] in ("int", "float", "bool"):
            return f"toInt64({one[0]})", "int"
        if name == "float" and one and one[1] in ("int", "float", "bool"):
            return f"toFloat64({one[0]})", "float"
        if name == "bool" and one:
            return _truthy(*one), "bool"
        if (
            name in ("min", "max")
            and len(args) >= 2
            and len({k for _, k in args}) == 1
            and args[0][1] in ("int", "float", "str")
        ):
            fn = "least" if name == "min" else "greatest"
            return f"{fn}({', '.join(a for a, _ in args)})", args[0][1]
        if name == "concat" and args:
            return "concat(" + ", ".join(
                _to_str(a, k, python_bool=True) for a, k in args
            ) + ")", "str"
        if name == "coalesce" and args and len({k for _, k in args} - {"null"}) <= 1:
            kind = next((k for _, k in args if k != "null"), "null")
            return f"coalesce({', '.join(a for a, _ in args)})", kind
        raise Untranslatable(f"{name}() of these values")


def upcast_field_sql(
    path: str,
    ftype: FieldType,
    plan: ReadPlan | None,
    version_fields: Mapping[int, Mapping[str, FieldType]],
    what: str = "field",
) -> str:
    """SQL reading latest-version field ``path`` (typed ``ftype``) from every event, old
    versions upcast by ``plan``; ``version_fields``: each stored version's fields."""
    latest = field_sql(path, ftype)
    branches = plan.of(path) if plan is not None else {}
    if not branches:
        return latest
    parts: list[str] = []
    for version, source in branches.items():
        try:
            sql, _ = _Compiler(version_fields.get(version, {}), ftype).value(source)
        except Untranslatable as exc:
            raise InvalidDefinition(
                f"{what}: field {path!r} of events stored as version {version} comes from a "
                f"migration ClickHouse cannot compute ({exc}); read another field",
                field=what,
            ) from None
        parts.append(f"payload_version = {version}, {_typed(sql, ftype)}")
    return f"multiIf({', '.join(parts)}, {latest})"


class FieldReader:
    """Reads payload fields of one subject as its latest version: plain ``JSONExtract``
    for events stored under it, the read plan's expressions for older ones."""

    def __init__(
        self,
        plan: ReadPlan | None = None,
        version_fields: Mapping[int, Mapping[str, FieldType]] | None = None,
    ) -> None:
        self._plan = plan
        self._version_fields = version_fields or {}

    def upcasts(self, path: str) -> bool:
        """Whether events of some older version read ``path`` other than as stored."""
        return self._plan is not None and bool(self._plan.of(path))

    def sql(self, path: str, ftype: FieldType | None, what: str = "field") -> str:
        if ftype is None:
            return path
        return upcast_field_sql(path, ftype, self._plan, self._version_fields, what)

    def json_type_sql(self, path: str) -> str:
        """SQL naming the JSON type (``JSONType``: ``'Int64'``, ``'String'``, ``'Null'`` for
        a missing value, ...) of the stored value every event reads ``path`` from: the
        field itself, or where an older version keeps it; ``''`` for events whose value a
        migration computes."""
        latest = f"toString(JSONType(payload, {_keys(tuple(path.split('.')))}))"
        branches = self._plan.of(path) if self._plan is not None else {}
        parts = []
        for version, source in branches.items():
            stored = source.first if isinstance(source, OrElse) else source  # add: when absent
            sql = (
                f"toString(JSONType(payload, {_keys(stored.path)}))"
                if isinstance(stored, Stored)
                else "''"
            )
            parts.append(f"payload_version = {version}, {sql}")
        return f"multiIf({', '.join(parts)}, {latest})" if parts else latest


def field_reader(registry: Any, subject: str, version: int | None = None) -> FieldReader:
    """The reader of ``subject``'s fields as its latest version (or as ``version``), from
    the registry's read plan and the schemas of the versions it names."""
    return plan_reader(registry, subject, registry.read_plan(subject, version))


def plan_reader(registry: Any, subject: str, plan: ReadPlan) -> FieldReader:
    """The reader of ``subject``'s fields through ``plan`` (a registered version's, or a
    candidate's: ``registry.Candidate.plan``)."""
    if not plan.sources:
        return FieldReader()
    version_fields = {}
    for stored in plan.sources:
        schema = registry.version(subject, stored, deleted=True)
        version_fields[stored] = schema_fields(str(schema.schema_type), schema.schema)
    return FieldReader(plan, version_fields)
