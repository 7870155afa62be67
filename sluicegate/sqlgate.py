"""The one gate every piece of caller-supplied ClickHouse SQL passes before it runs.

Callers send SQL in two places: whole queries (``/v1/sql``, ``sluicegate sql``) and
expressions (a feature's aggregation, filter and entity key). Both are parsed with sqlglot's
ClickHouse dialect and checked against allowlists, never denylists:

- a query is exactly one SELECT (or UNION of SELECTs), DESCRIBE, EXPLAIN of one, or one of
  a few SHOW forms; no FORMAT, no INTO OUTFILE, and SETTINGS only of :data:`QUERY_SETTINGS`;
- tables come only from database ``sluicegate`` (unqualified names resolve there) and the
  schema-describing system tables in :data:`SYSTEM_TABLES`; no table functions;
- every function is in :class:`FunctionAllowlist`, which is derived from the engine's own
  ``system.functions`` by category: pure computation (arithmetic, strings, dates, JSON,
  arrays, aggregates ...) passes; the categories that reach outside the data ("Other" holds
  ``file``, ``sleep``, ``throwIf``, ``hostName``, ``getSetting``; dictionaries;
  introspection; machine learning; internals) do not;
- an expression has no subquery and names no table.

The SQL that runs is sqlglot's rendering of the checked tree without comments, so what was
checked is exactly what the engine sees. A refusal names the construct and never echoes
data.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from sluicegate.errors import BadRequest, Forbidden
from sluicegate.naming import CLICKHOUSE_DATABASE

__all__ = [
    "ADMIN_TABLES",
    "ALLOWED_CATEGORIES",
    "DIALECT",
    "QUERY_SETTINGS",
    "SYSTEM_TABLES",
    "FunctionAllowlist",
    "SqlNotAllowed",
    "SqlTableForbidden",
    "SqlWriteNotAllowed",
    "check_expression",
    "check_query",
    "function_name",
    "load_allowlist",
]

DIALECT = "clickhouse"

# system.functions categories whose functions compute only from their arguments.
ALLOWED_CATEGORIES = frozenset(
    {
        "Aggregate Functions",
        "Arithmetic",
        "Arrays",
        "Bit",
        "Bitmap",
        "Comparison",
        "Conditional",
        "Dates and Times",
        "Distance",
        "Encoding",
        "Financial",
        "Geo",
        "Geo Polygon",
        "Hash",
        "IP Address",
        "JSON",
        "Logical",
        "Map",
        "Mathematical",
        "Null",
        "Random Number",
        "Rounding",
        "String",
        "String Replacement",
        "String Search",
        "String Splitting",
        "Time Series",
        "Time Window",
        "Tuple",
        "Type Conversion",
        "URL",
        "UUID",
    }
)
# Pure functions ClickHouse files under "Other", named one by one.
ALLOWED_OTHER = frozenset(
    {
        "bar",
        "byteSize",
        "countDigits",
        "currentDatabase",
        "currentSchemas",
        "defaultValueOfTypeName",
        "finalizeAggregation",
        "formatReadableDecimalSize",
        "formatReadableQuantity",
        "formatReadableSize",
        "formatReadableTimeDelta",
        "identity",
        "ifNotFinite",
        "ignore",
        "isConstant",
        "isFinite",
        "isInfinite",
        "isNaN",
        "materialize",
        "neighbor",
        "parseTimeDelta",
        "rowNumberInAllBlocks",
        "rowNumberInBlock",
        "runningDifference",
        "runningDifferenceStartingWithFirstValue",
        "toColumnTypeName",
        "toTypeName",
        "transform",
        "visibleWidth",
    }
)
# ClickHouse's self-test aggregate: it exists to throw.
_SELF_TEST = frozenset({"aggThrow"})
# Settings a query may carry: they change how a join reads, never a limit or a permission
# (the training-set SQL `sluicegate training-set --print-sql` shows carries one).
QUERY_SETTINGS = frozenset({"join_use_nulls", "join_algorithm"})
# System tables that describe the schema and nothing else.
SYSTEM_TABLES = frozenset({"tables", "columns", "functions", "data_type_families"})
# Tables of database sluicegate only an admin's SQL may read: `rejections` holds the
# events every team had refused (a team reads its own with GET /v1/rejections/{subject}).
ADMIN_TABLES = frozenset({"rejections"})

_CALL_HEAD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_IDENT = r"(?:`[^`]+`|\"[^\"]+\"|[A-Za-z_][A-Za-z0-9_]*)"
_SHOW = re.compile(
    rf"^SHOW\s+(?:(?P<tables>TABLES)(?:\s+(?:FROM|IN)\s+(?P<db>{_IDENT}))?"
    rf"|(?P<create>CREATE\s+TABLE)\s+(?P<table>{_IDENT}(?:\.{_IDENT})?)"
    rf"|(?P<columns>COLUMNS)\s+(?:FROM|IN)\s+(?P<ctable>{_IDENT}(?:\.{_IDENT})?))\s*$",
    re.IGNORECASE,
)
_EXPLAIN = re.compile(
    r"^EXPLAIN(?:\s+(?P<kind>AST|SYNTAX|PLAN|PIPELINE|ESTIMATE|QUERY\s+TREE))?\s+(?P<q>.+)$",
    re.IGNORECASE | re.DOTALL,
)

logging.getLogger("sqlglot").setLevel(logging.ERROR)


class SqlNotAllowed(BadRequest):
    """Caller SQL that the gate refuses; the message names the construct."""

    error_code = 40003


class SqlWriteNotAllowed(Forbidden):
    """A statement that is not a read (INSERT, DDL, KILL, SET ...): caller SQL is read-only."""

    error_code = 40302


class SqlTableForbidden(Forbidden):
    """A table of :data:`ADMIN_TABLES` read by a team's SQL."""

    error_code = 40303


@dataclass(frozen=True)
class FunctionAllowlist:
    """The functions caller SQL may call, derived from ``system.functions``."""

    scalars: frozenset[str]
    aggregates: frozenset[str]
    combinators: tuple[str, ...] = ()
    case_insensitive: frozenset[str] = field(default_factory=frozenset)
    known: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_rows(
        cls, rows: Iterable[tuple[Any, ...]], combinators: Iterable[str]
    ) -> FunctionAllowlist:
        """From ``(name, is_aggregate, case_insensitive, alias_to, categories)`` rows."""
        rows = list(rows)
        by_name = {r[0]: r for r in rows}

        def category(row: tuple[Any, ...]) -> str:
            alias = row[3]
            return str(by_name[alias][4]) if not row[4] and alias in by_name else str(row[4])

        scalars: set[str] = set()
        aggregates: set[str] = set()
        folded: set[str] = set()
        for row in rows:
            name, is_agg, ci = row[0], bool(row[1]), bool(row[2])
            cat = category(row)
            ok = (
                cat in ALLOWED_CATEGORIES or name in ALLOWED_OTHER or row[3] in ALLOWED_OTHER
            ) and name not in _SELF_TEST
            if not ok:
                continue
            (aggregates if is_agg else scalars).add(name)
            if ci:
                folded.add(name.lower())
                (aggregates if is_agg else scalars).add(name.lower())
        return cls(
            scalars=frozenset(scalars),
            aggregates=frozenset(aggregates),
            combinators=tuple(sorted(combinators, key=len, reverse=True)),
            case_insensitive=frozenset(folded),
            known=frozenset(r[0] for r in rows) | frozenset(r[0].lower() for r in rows if r[2]),
        )

    def _norm(self, name: str) -> str:
        return name.lower() if name.lower() in self.case_insensitive else name

    def is_aggregate(self, name: str) -> bool:
        """Whether ``name`` is an allowed aggregate, combinator suffixes included."""
        name = self._norm(name)
        if name in self.aggregates:
            return True
        return any(
            name.endswith(comb) and len(name) > len(comb) and self.is_aggregate(name[: -len(comb)])
            for comb in self.combinators
        )

    def allows(self, name: str) -> bool:
        """Whether caller SQL may call ``name``."""
        return self._norm(name) in self.scalars or self.is_aggregate(name)

    def exists(self, name: str) -> bool:
        """Whether the engine knows ``name`` at all (to tell 'unknown' from 'not allowed')."""
        return self._norm(name) in self.known or name.lower() in self.known


def load_allowlist(client: Any) -> FunctionAllowlist:
    """The allowlist of the engine behind ``client`` (a clickhouse-connect client)."""
    rows = client.query(
        "SELECT name, is_aggregate, case_insensitive, alias_to, categories FROM system.functions"
    ).result_rows
    combinators = [
        r[0]
        for r in client.query("SELECT name FROM system.aggregate_function_combinators").result_rows
    ]
    return FunctionAllowlist.from_rows(rows, combinators)


def function_name(node: exp.Expr) -> str | None:
    """The ClickHouse name a function node calls, or None for syntax (``CASE``, ``[..]``)."""
    if isinstance(node, exp.Anonymous | exp.AnonymousAggFunc | exp.ParameterizedAgg):
        return str(node.this)
    match = _CALL_HEAD.match(node.sql(dialect=DIALECT, comments=False))
    return match.group(1) if match else None


def _refuse(message: str, what: str) -> SqlNotAllowed:
    return SqlNotAllowed(f"{what}: {message}", field=what)


def _check_functions(tree: exp.Expr, allow: FunctionAllowlist, what: str) -> None:
    for node in tree.find_all(exp.Func):
        name = function_name(node)
        if name is None:  # syntax sqlglot knows: AND, CASE, [1, 2], x::T
            continue
        typed = not isinstance(node, exp.Anonymous | exp.AnonymousAggFunc | exp.ParameterizedAgg)
        if not (allow.allows(name) or (typed and allow.allows(name.lower()))):
            # sqlglot spells the functions it knows in capitals (SUBSTRING, EXTRACT)
            if allow.exists(name):
                raise _refuse(f"function {name!r} is not allowed here", what)
            raise _refuse(f"unknown function {name!r}", what)


def _check_tables(tree: exp.Expr, what: str, admin: bool) -> None:
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            name = function_name(table.this) if isinstance(table.this, exp.Func) else None
            raise _refuse(
                f"table function {name or table.this.sql(DIALECT)!r} is not "
                "allowed here; read tables of database sluicegate",
                what,
            )
        if table.catalog:
            raise _refuse(f"table {table.sql(DIALECT)!r} is not allowed here", what)
        db = table.db
        if db in ("", CLICKHOUSE_DATABASE):
            if not admin and table.name in ADMIN_TABLES:
                raise SqlTableForbidden(
                    f"{what}: table {table.name!r} is readable by an admin only; a team reads "
                    "its own rejections with GET /v1/rejections/{subject}",
                    field=what,
                )
            continue
        if db == "system" and table.name in SYSTEM_TABLES:
            continue
        raise _refuse(
            f"table '{db}.{table.name}' is not allowed here; tables of database "
            f"{CLICKHOUSE_DATABASE} and system.{{{', '.join(sorted(SYSTEM_TABLES))}}} "
            "may be read",
            what,
        )


def _check_settings(settings: list[exp.Expr], what: str) -> None:
    for item in settings:
        name = item.this.name if isinstance(item, exp.EQ) else ""
        if name not in QUERY_SETTINGS or not isinstance(item.expression, exp.Literal):
            raise _refuse(
                f"SETTINGS {name or item.sql(DIALECT)!r} is not allowed here; a "
                f"query may set only {', '.join(sorted(QUERY_SETTINGS))}",
                what,
            )


def _check_clauses(tree: exp.Expr, what: str) -> None:
    for node in tree.walk():
        if isinstance(node, exp.Query) and node.args.get("settings"):
            _check_settings(node.args["settings"], what)
        for clause in ("format", "into"):
            if isinstance(node, exp.Query) and node.args.get(clause):
                raise _refuse(f"{clause.upper()} is not allowed here", what)
        if isinstance(node, exp.Command | exp.Into):
            raise _refuse(f"statement {node.sql(DIALECT)[:20]!r} is not allowed here", what)


def _parse_statements(text: str, what: str) -> list[exp.Expr]:
    try:
        trees = [t for t in sqlglot.parse(text, dialect=DIALECT) if t is not None]
    except ParseError as exc:
        errors = getattr(exc, "errors", None) or [{}]
        desc = errors[0].get("description") or "syntax error"
        line, col = errors[0].get("line"), errors[0].get("col")
        where = f" at line {line}, column {col}" if line else ""
        raise _refuse(f"cannot parse the SQL{where}: {desc}", what) from None
    except SqlglotError:
        raise _refuse("cannot parse the SQL", what) from None
    return trees


def _render(tree: exp.Expr) -> str:
    return tree.sql(dialect=DIALECT, comments=False)


def _check_select(tree: exp.Expr, allow: FunctionAllowlist, what: str, admin: bool) -> str:
    if not isinstance(tree, exp.Query | exp.Describe):
        kind = type(tree).__name__.upper()
        raise SqlWriteNotAllowed(
            f"{what}: read-only SQL: only SELECT, SHOW, DESCRIBE and EXPLAIN are allowed, "
            f"got {kind}",
            field=what,
        )
    _check_clauses(tree, what)
    _check_tables(tree, what, admin)
    _check_functions(tree, allow, what)
    return _render(tree)


def _show(text: str, what: str) -> str:
    match = _SHOW.match(text)
    if match is None:
        raise _refuse(
            "only SHOW TABLES [FROM sluicegate], SHOW CREATE TABLE t and "
            "SHOW COLUMNS FROM t are allowed",
            what,
        )
    if match.group("tables"):
        db = (match.group("db") or CLICKHOUSE_DATABASE).strip('`"')
        if db != CLICKHOUSE_DATABASE:
            raise _refuse(f"database {db!r} is not allowed here", what)
        return f"SHOW TABLES FROM {CLICKHOUSE_DATABASE}"
    name = match.group("table") or match.group("ctable")
    parts = [p.strip('`"') for p in re.findall(_IDENT, name)]
    if len(parts) == 2 and parts[0] != CLICKHOUSE_DATABASE:
        raise _refuse(f"database {parts[0]!r} is not allowed here", what)
    table = exp.to_identifier(parts[-1]).sql(DIALECT)
    verb = "SHOW CREATE TABLE" if match.group("create") else "SHOW COLUMNS FROM"
    return f"{verb} {CLICKHOUSE_DATABASE}.{table}"


def check_query(
    text: str, allow: FunctionAllowlist, what: str = "query", *, admin: bool = False
) -> str:
    """The SQL to run for caller query ``text``, or :class:`SqlNotAllowed` naming why not
    (``admin``: the caller may also read :data:`ADMIN_TABLES`)."""
    body = text.strip().rstrip(";").strip()
    if not body:
        raise _refuse("must not be empty", what)
    head = body.split(None, 1)[0].upper()
    if head == "SHOW":
        if ";" in body:
            raise _refuse("exactly one statement is allowed", what)
        return _show(body, what)
    if head == "EXPLAIN":
        match = _EXPLAIN.match(body)
        if match is None:
            raise _refuse("EXPLAIN [AST|SYNTAX|PLAN|PIPELINE|ESTIMATE] <SELECT ...>", what)
        kind = " ".join((match.group("kind") or "PLAN").upper().split())
        return f"EXPLAIN {kind} {check_query(match.group('q'), allow, what, admin=admin)}"
    trees = _parse_statements(body, what)
    if len(trees) != 1:
        raise _refuse(f"exactly one statement is allowed, got {len(trees)}", what)
    return _check_select(trees[0], allow, what, admin)


def check_expression(tree: exp.Expr, allow: FunctionAllowlist, what: str) -> None:
    """Refuse an expression tree (already parsed) that reads a table, holds a subquery or
    calls a function outside the allowlist."""
    if isinstance(tree, exp.Query) or tree.find(exp.Query, exp.Subquery, exp.Table):
        raise _refuse("subqueries and tables are not allowed in an expression", what)
    _check_clauses(tree, what)
    _check_functions(tree, allow, what)
