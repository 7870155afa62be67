"""Parsing, checking and rewriting the ClickHouse expressions of feature definitions.

An expression names payload fields (``post_id``, ``author.id``); compilation replaces each
with a typed ``JSONExtract(payload, ...)`` over ``events``, so the result runs as-is in
ClickHouse. Aggregations are split into their aggregate calls, so the online store can
keep one ``-State`` column per call and rebuild the expression from ``-Merge`` calls.

Checks, each failing with a message naming the problem: syntax, unknown field (with the
fields the subject has), the SQL gate's rules (``sluicegate/sqlgate.py``: no subquery or
table, functions from the allowlist only), a field of the wrong type under a numeric
aggregate, an aggregate in a filter, nested aggregates, a field outside any aggregate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from materializer.features._fields import ENVELOPE_COLUMNS, FieldType
from materializer.features._upcast import FieldReader
from sluicegate.errors import InvalidDefinition
from sluicegate.sqlgate import FunctionAllowlist, SqlNotAllowed, check_expression

__all__ = [
    "ORDER_COLUMNS_SQL",
    "ORDER_KEY_SQL",
    "PLACEHOLDER0",
    "AggregateCall",
    "CompiledExpression",
    "column_names",
    "compile_aggregation",
    "compile_filter",
    "fill_template",
    "over_window",
    "set_aggregate",
    "split_aggregates",
    "split_arguments",
]

DIALECT = "clickhouse"
# The deterministic order of events: time, then arrival, then the source position (a CDC
# change's LSN; 0 for HTTP events), then id.
ORDER_COLUMNS_SQL = "occurred_at, ingested_at, ifNull(source_lsn, 0), event_id"
ORDER_KEY_SQL = f"tuple({ORDER_COLUMNS_SQL})"

# Aggregates that need numbers (checked on fields named directly as their first argument).
_NUMERIC_AGGREGATES = {
    "sum",
    "avg",
    "sumWithOverflow",
    "sumKahan",
    "median",
    "quantile",
    "quantiles",
    "quantileExact",
    "quantilesExact",
    "quantileTDigest",
    "quantilesTDigest",
    "quantileTiming",
    "stddevPop",
    "stddevSamp",
    "varPop",
    "varSamp",
    "skewPop",
    "skewSamp",
    "kurtPop",
    "kurtSamp",
    "avgWeighted",
    "corr",
    "covarPop",
    "covarSamp",
    "simpleLinearRegression",
    "sumCount",
    "quantileDeterministic",
    "medianExact",
}
# Aggregates whose empty result is 0 (the documented count-like default).
_COUNT_LIKE = re.compile(r"^(count|uniq|sum)", re.IGNORECASE)
_PLACEHOLDER = "__sg_agg_{}__"
PLACEHOLDER0 = _PLACEHOLDER.format(0)


@dataclass(frozen=True)
class AggregateCall:
    """One aggregate call of an aggregation, already over ``events`` columns."""

    name: str
    params: str | None
    args: str

    @property
    def sql(self) -> str:
        params = f"({self.params})" if self.params is not None else ""
        return f"{self.name}{params}({self.args})"

    def state_sql(self) -> str:
        """The ``-State`` form, stored per bucket by the materialized views."""
        params = f"({self.params})" if self.params is not None else ""
        return f"{self.name}State{params}({self.args})"

    def merge_state_sql(self, column: str) -> str:
        """The ``-MergeState`` form: states merged into a (coarser) state."""
        params = f"({self.params})" if self.params is not None else ""
        return f"{self.name}MergeState{params}({column})"

    def if_sql(self, condition: str) -> str | None:
        """The call over only the rows where ``condition`` holds: its ``-If`` form, or for a
        call already ending in ``-If`` its own condition joined with ``condition``; None
        when there is no such form (DISTINCT arguments, ``-If`` inside a chain of
        combinators, whose condition may not be its last argument)."""
        params = f"({self.params})" if self.params is not None else ""
        if self.args.lstrip().upper().startswith("DISTINCT"):
            return None
        if self.name.endswith("If"):
            args = split_arguments(self.args) if self.args.strip() else []
            if not args:
                return None
            *rest, own = args
            return f"{self.name}{params}({', '.join([*rest, f'({own}) AND {condition}'])})"
        if "If" in self.name:
            return None
        joined = f"{self.args}, {condition}" if self.args.strip() else condition
        return f"{self.name}If{params}({joined})"

    def merge_sql(self, column: str, condition: str | None = None) -> str:
        """The ``-Merge`` form over a state column (``-MergeIf`` with a row condition)."""
        params = f"({self.params})" if self.params is not None else ""
        if condition is not None:
            return f"{self.name}MergeIf{params}({column}, {condition})"
        return f"{self.name}Merge{params}({column})"


@dataclass(frozen=True)
class CompiledExpression:
    """An expression over ``events`` columns. ``template`` is the same expression with each
    aggregate call replaced by a placeholder, see :meth:`with_aggregates`."""

    sql: str
    fields: tuple[str, ...]
    aggregates: tuple[AggregateCall, ...] = ()
    template: str = ""
    count_like: bool = False

    def with_aggregates(self, replacements: Iterable[str]) -> str:
        """The expression with aggregate call i replaced by ``replacements[i]``."""
        return fill_template(self.template, replacements)


def fill_template(template: str, replacements: Iterable[str]) -> str:
    """``template`` (see :func:`split_aggregates`) with placeholder i replaced by
    ``replacements[i]``."""
    out = template
    for i, rep in enumerate(replacements):
        out = out.replace(_PLACEHOLDER.format(i), rep)
    return out


def _parse(text: str, what: str) -> exp.Expr:
    try:
        tree = sqlglot.parse_one(text, dialect=DIALECT)
    except ParseError as exc:
        errors = getattr(exc, "errors", None) or [{}]
        desc = errors[0].get("description") or str(exc).splitlines()[0]
        raise InvalidDefinition(f"{what}: cannot parse {text!r}: {desc}", field=what) from exc
    if tree is None or isinstance(tree, exp.Query | exp.Command):
        raise InvalidDefinition(f"{what}: expected an expression, got {text!r}", field=what)
    return tree


def _column_path(col: exp.Column | exp.Dot) -> str:
    if isinstance(col, exp.Column):
        return ".".join(p.name for p in col.parts)
    return col.sql(dialect=DIALECT).replace('"', "").replace("`", "")


def _func_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Anonymous | exp.AnonymousAggFunc | exp.ParameterizedAgg):
        return str(node.this)
    text = node.sql(dialect=DIALECT)
    return text.split("(", 1)[0].strip()


def _unknown_field(path: str, what: str, fields: dict[str, FieldType], subject: str) -> None:
    known = ", ".join(sorted(fields)) or "(none)"
    raise InvalidDefinition(
        f"{what}: unknown field {path!r}: subject {subject} has no such field (fields: {known})",
        field=what,
    )


def _resolve_columns(
    tree: exp.Expr, what: str, fields: dict[str, FieldType], subject: str, reader: FieldReader
) -> tuple[exp.Expr, list[str]]:
    """Replace every field reference with its typed extraction; -> (tree, fields read)."""
    read: list[str] = []

    def swap(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column | exp.Dot) and not isinstance(node.parent, exp.Dot):
            path = _column_path(node)
            if path in fields:
                if path not in read:
                    read.append(path)
                return sqlglot.parse_one(reader.sql(path, fields[path], what), dialect=DIALECT)
            if path in ENVELOPE_COLUMNS:
                return exp.column(path)
            _unknown_field(path, what, fields, subject)
        return node

    return tree.transform(swap, copy=True), read


def _check_functions(tree: exp.Expr, what: str, catalog: FunctionAllowlist | None) -> None:
    """The SQL gate's expression rules: no subquery, no table, allowlisted functions only
    (without a catalog, only the structure is checked)."""
    if isinstance(tree, exp.Query) or tree.find(exp.Query, exp.Subquery, exp.Table):
        raise InvalidDefinition(
            f"{what}: subqueries and tables are not allowed in an expression", field=what
        )
    if catalog is None:
        return
    try:
        check_expression(tree, catalog, what)
    except SqlNotAllowed as exc:
        raise InvalidDefinition(exc.message, field=what) from None


def _is_aggregate(node: exp.Expr, catalog: FunctionAllowlist | None) -> bool:
    if isinstance(node, exp.AggFunc):
        return True
    return bool(
        isinstance(node, exp.Anonymous)
        and catalog is not None
        and catalog.is_aggregate(_func_name(node))
    )


def _sugar(tree: exp.Expr) -> exp.Expr:
    """``first(x)``/``last(x)`` -> deterministic argMin/argMax over the event order (ties by
    ingested_at, then source position, then event_id); ``count(DISTINCT x)`` ->
    ``uniqExact(x)`` (the state form needs the real function name)."""

    def swap(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.First | exp.Last):
            fn = "argMin" if isinstance(node, exp.First) else "argMax"
            inner = node.this.sql(dialect=DIALECT)
            return sqlglot.parse_one(
                f"tupleElement({fn}(tuple({inner}), {ORDER_KEY_SQL}), 1)", dialect=DIALECT
            )
        if isinstance(node, exp.Count) and isinstance(node.this, exp.Distinct):
            args = ", ".join(e.sql(dialect=DIALECT) for e in node.this.expressions)
            return sqlglot.parse_one(f"uniqExact({args})", dialect=DIALECT)
        return node

    return tree.transform(swap, copy=True)


def _check_types(agg: exp.Expr, name: str, what: str, fields: dict[str, FieldType]) -> None:
    base = name
    for comb in ("If", "OrNull", "OrDefault", "Distinct"):
        if base.endswith(comb) and base[: -len(comb)] in _NUMERIC_AGGREGATES:
            base = base[: -len(comb)]
    if base not in _NUMERIC_AGGREGATES:
        return
    args = agg.args.get("params") if isinstance(agg, exp.ParameterizedAgg) else None
    if args is None:
        args = [agg.this] if isinstance(agg.this, exp.Expr) else list(agg.expressions)
    first = args[0] if args else None
    if isinstance(first, exp.Column):
        path = _column_path(first)
        ftype = fields.get(path)
        if ftype is not None and not ftype.numeric:
            raise InvalidDefinition(
                f"{what}: {name}({path}) needs a number but field {path!r} is a {ftype.kind}",
                field=what,
            )


def _aggregate_call(node: exp.Expr, name: str) -> AggregateCall:
    if isinstance(node, exp.ParameterizedAgg):
        params = ", ".join(p.sql(dialect=DIALECT) for p in node.expressions)
        args = ", ".join(a.sql(dialect=DIALECT) for a in node.args.get("params") or [])
        return AggregateCall(name, params, args)
    text = node.sql(dialect=DIALECT)
    if not text.startswith(name + "("):
        # sqlglot spells some functions its own way (median -> quantile(0.5)); use its text
        head, rest = text.split("(", 1)
        name = head.strip()
        if ")(" in rest:
            params, args = rest.split(")(", 1)
            return AggregateCall(name, params, args[:-1])
        return AggregateCall(name, None, rest[:-1])
    return AggregateCall(name, None, text[len(name) + 1 : -1])


def compile_aggregation(
    text: str,
    fields: dict[str, FieldType],
    subject: str,
    catalog: FunctionAllowlist | None,
    what: str = "aggregation",
    reader: FieldReader | None = None,
) -> CompiledExpression:
    """Check and compile an aggregation (one or more aggregate calls combined by scalar
    functions) against the payload ``fields`` of ``subject``; ``reader`` reads each field
    as the latest version (default: as stored)."""
    raw = _sugar(_parse(text, what))
    if raw.find(exp.Window):
        raise InvalidDefinition(f"{what}: window functions (OVER) are not allowed", field=what)
    if raw.find(exp.Filter):
        raise InvalidDefinition(
            f"{what}: FILTER (WHERE ...) is not supported; use the -If form (countIf, sumIf) "
            "or the definition's filter",
            field=what,
        )
    _check_functions(raw, what, catalog)
    top: list[exp.Expr] = []
    for node in raw.walk():
        if _is_aggregate(node, catalog):
            outer = node.parent
            while outer is not None:
                if _is_aggregate(outer, catalog):
                    raise InvalidDefinition(
                        f"{what}: aggregate {_func_name(node)!r} is nested inside aggregate "
                        f"{_func_name(outer)!r}",
                        field=what,
                    )
                outer = outer.parent
            top.append(node)
    if not top:
        raise InvalidDefinition(
            f"{what}: {text!r} has no aggregate function (e.g. count(), uniqExact(x), "
            "sum(x), last(x))",
            field=what,
        )
    for node in top:
        _check_types(node, _func_name(node), what, fields)
    # a field outside every aggregate has no single value per entity
    for col in raw.find_all(exp.Column):
        parent = col.parent
        while parent is not None and not _is_aggregate(parent, catalog):
            parent = parent.parent
        if parent is None:
            raise InvalidDefinition(
                f"{what}: field {_column_path(col)!r} is used outside an aggregate function",
                field=what,
            )

    compiled, read = _resolve_columns(raw, what, fields, subject, reader or FieldReader())
    calls: list[AggregateCall] = []
    names: list[str] = []

    def place(node: exp.Expr) -> exp.Expr:
        if _is_aggregate(node, catalog) and not any(
            _is_aggregate(a, catalog) for a in _ancestors(node)
        ):
            name = _func_name(node)
            names.append(name)
            calls.append(_aggregate_call(node, name))
            return exp.column(_PLACEHOLDER.format(len(calls) - 1))
        return node

    template = compiled.transform(place, copy=True).sql(dialect=DIALECT)
    count_like = (
        isinstance(compiled, exp.AggFunc | exp.Anonymous)
        and len(calls) == 1
        and bool(_COUNT_LIKE.match(calls[0].name))
        and template == _PLACEHOLDER.format(0)
    )
    return CompiledExpression(
        sql=compiled.sql(dialect=DIALECT),
        fields=tuple(read),
        aggregates=tuple(calls),
        template=template,
        count_like=count_like,
    )


def _ancestors(node: exp.Expr) -> Iterable[exp.Expr]:
    parent = node.parent
    while parent is not None:
        yield parent
        parent = parent.parent


def split_aggregates(
    sql: str, catalog: FunctionAllowlist | None
) -> tuple[str, tuple[AggregateCall, ...]]:
    """An expression over ``events`` (a compiled aggregation, or a training set's
    ``value_agg``) as its top-level aggregate calls and a template holding placeholder i
    where call i was (see :meth:`CompiledExpression.with_aggregates`). Raises ValueError
    when ``sql`` does not parse or holds no aggregate call."""
    try:
        tree = sqlglot.parse_one(sql, dialect=DIALECT)
    except ParseError as exc:
        raise ValueError(f"cannot parse {sql!r}: {str(exc).splitlines()[0]}") from exc
    calls: list[AggregateCall] = []

    def place(node: exp.Expr) -> exp.Expr:
        if _is_aggregate(node, catalog) and not any(
            _is_aggregate(a, catalog) for a in _ancestors(node)
        ):
            calls.append(_aggregate_call(node, _func_name(node)))
            return exp.column(_PLACEHOLDER.format(len(calls) - 1))
        return node

    template = tree.transform(place, copy=True).sql(dialect=DIALECT)
    if not calls:
        raise ValueError(f"no aggregate function call in {sql!r}")
    return template, tuple(calls)


def split_arguments(args: str) -> list[str]:
    """The top-level arguments of an argument list's text (``a, f(b, c)`` -> 2)."""
    tree = sqlglot.parse_one(f"tuple({args})", dialect=DIALECT)
    return [e.sql(dialect=DIALECT) for e in tree.expressions]


def over_window(sql: str, window: str, catalog: FunctionAllowlist | None) -> str:
    """``sql`` with ``OVER <window>`` after each aggregate call: ``sum(x) / count()``
    becomes ``sum(x) OVER w / count() OVER w`` (a running form of an aggregation)."""
    template, calls = split_aggregates(sql, catalog)
    compiled = CompiledExpression(sql=sql, fields=(), aggregates=calls, template=template)
    return compiled.with_aggregates(f"{call.sql} OVER {window}" for call in calls)


def column_names(sql: str) -> set[str]:
    """The names of the columns an expression reads (lambda parameters included)."""
    return {c.name for c in sqlglot.parse_one(sql, dialect=DIALECT).find_all(exp.Column)}


def compile_filter(
    text: str | None,
    fields: dict[str, FieldType],
    subject: str,
    catalog: FunctionAllowlist | None,
    what: str = "filter",
    reader: FieldReader | None = None,
) -> CompiledExpression:
    """Check and compile a row filter (a boolean expression without aggregates)."""
    if text is None or not text.strip():
        return CompiledExpression(sql="1", fields=())
    tree = _parse(text, what)
    _check_functions(tree, what, catalog)
    for node in tree.walk():
        if _is_aggregate(node, catalog):
            raise InvalidDefinition(
                f"{what}: aggregate function {_func_name(node)!r} is not allowed in a filter",
                field=what,
            )
    compiled, read = _resolve_columns(tree, what, fields, subject, reader or FieldReader())
    return CompiledExpression(sql=compiled.sql(dialect=DIALECT), fields=tuple(read))


# --------------------------------------------------------------------------- set attribute


def set_aggregate(value_sql: str, filter_sql: str) -> tuple[AggregateCall, str]:
    """The aggregate of a set attribute: every event of the entity as (row key, event order,
    value, live), sorted; the last image of each row key is kept when live; its values come
    out distinct and sorted. -> (the aggregate call, the template around it)."""
    call = AggregateCall(
        "groupArray",
        None,
        f"tuple(entity_key, {ORDER_COLUMNS_SQL}, {value_sql}, "
        f"toUInt8(op != 'd' AND ({filter_sql})))",
    )
    rows = f"arraySort({PLACEHOLDER0})"
    template = (
        "arraySort(arrayDistinct(arrayMap(r -> tupleElement(r, 6), "
        "arrayFilter((r, next_key) -> tupleElement(r, 7) = 1 AND tupleElement(r, 1) != next_key, "
        f"{rows}, arrayPushBack(arrayPopFront(arrayMap(r -> tupleElement(r, 1), {rows})), '')"
        "))))"
    )
    return call, template
