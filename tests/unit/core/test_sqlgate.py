"""The SQL gate: what caller SQL may be, on an allowlist built the way the server builds
it (from system.functions rows and their categories)."""

from __future__ import annotations

import pytest
import sqlglot

from sluicegate.sqlgate import (
    FunctionAllowlist,
    SqlNotAllowed,
    SqlTableForbidden,
    SqlWriteNotAllowed,
    check_expression,
    check_query,
)

# (name, is_aggregate, case_insensitive, alias_to, categories), as system.functions has them
ROWS = [
    ("count", 1, 1, "", "Aggregate Functions"),
    ("sum", 1, 1, "", "Aggregate Functions"),
    ("uniqExact", 1, 0, "", "Aggregate Functions"),
    ("aggThrow", 1, 0, "", "Aggregate Functions"),
    ("lower", 0, 1, "", "String"),
    ("JSONExtractString", 0, 0, "", "JSON"),
    ("toStartOfDay", 0, 0, "", "Dates and Times"),
    ("now", 0, 1, "", "Dates and Times"),
    ("plus", 0, 0, "", "Arithmetic"),
    ("substring", 0, 1, "", "String"),
    ("substr", 0, 1, "substring", ""),
    ("toTypeName", 0, 0, "", "Other"),
    ("file", 0, 0, "", "Other"),
    ("sleep", 0, 0, "", "Other"),
    ("throwIf", 0, 0, "", "Other"),
    ("hostName", 0, 0, "", "Other"),
    ("getSetting", 0, 0, "", "Other"),
    ("dictGet", 0, 0, "", "Dictionary"),
    ("demangle", 0, 0, "", "Introspection"),
]
ALLOW = FunctionAllowlist.from_rows(ROWS, ["If", "State", "Merge"])


def test_allowlist_follows_categories() -> None:
    for name in (
        "count",
        "countIf",
        "uniqExactState",
        "lower",
        "LOWER",
        "substr",
        "toTypeName",
        "JSONExtractString",
    ):
        assert ALLOW.allows(name), name
    for name in (
        "file",
        "sleep",
        "throwIf",
        "hostName",
        "getSetting",
        "dictGet",
        "demangle",
        "aggThrow",
        "fileIf",
        "nope",
    ):
        assert not ALLOW.allows(name), name
    assert ALLOW.exists("file") and not ALLOW.exists("nope")


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("SELECT file('/proc/self/environ')", "function 'file' is not allowed"),
        ("SELECT lower(file('/etc/hostname'))", "function 'file' is not allowed"),
        ("SELECT 'x' INTO OUTFILE '/tmp/x' TRUNCATE FORMAT RawBLOB; SELECT 1", "cannot parse"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("KILL QUERY WHERE 1", "cannot parse"),
        ("SELECT * FROM system.processes", "table 'system.processes' is not allowed"),
        ("SELECT count() FROM numbers(3000000000)", "table function 'numbers'"),
        ("SELECT * FROM file('/etc/hostname', 'RawBLOB')", "table function 'file'"),
        ("SELECT sleep(3)", "function 'sleep' is not allowed"),
        ("SELECT count() FROM events SETTINGS readonly = 0", "SETTINGS 'readonly'"),
        (
            "SELECT 1 SETTINGS join_use_nulls = 1, max_execution_time = 0",
            "SETTINGS 'max_execution_time'",
        ),
        ("SELECT 1 FORMAT JSON", "FORMAT is not allowed"),
        ("SHOW TABLES FROM system", "database 'system' is not allowed"),
        ("SHOW PROCESSLIST", "only SHOW TABLES"),
        ("EXPLAIN SELECT file('x')", "function 'file' is not allowed"),
        ("SELECT * FROM other.t", "table 'other.t' is not allowed"),
        ("SELECT count() FROM events WHERE x IN (SELECT hostName())", "'hostName'"),
        ("SELECT nope(1)", "unknown function 'nope'"),
        ("", "must not be empty"),
    ],
)
def test_refused_queries_name_the_construct(query: str, needle: str) -> None:
    with pytest.raises(SqlNotAllowed, match=r"^query: ") as err:
        check_query(query, ALLOW)
    assert needle in err.value.message
    assert err.value.status == 400


@pytest.mark.parametrize(
    "query",
    ["INSERT INTO events SELECT 1", "DROP TABLE events", "CREATE TABLE t (x Int8) ENGINE = Memory"],
)
def test_writes_are_forbidden_as_read_only(query: str) -> None:
    with pytest.raises(SqlWriteNotAllowed, match=r"^query: read-only SQL") as err:
        check_query(query, ALLOW)
    assert err.value.status == 403


def test_comments_cannot_smuggle_sql() -> None:
    # sqlglot keeps comments; rendering them could reopen the statement. They are dropped.
    text = check_query("SELECT 1 -- */ , file('/etc/hostname') /*\n", ALLOW)
    assert text == "SELECT 1"


@pytest.mark.parametrize(
    ("query", "runs"),
    [
        ("SELECT count() FROM events", "SELECT count() FROM events"),
        (
            "SELECT name FROM system.tables WHERE database = 'sluicegate'",
            "SELECT name FROM system.tables WHERE database = 'sluicegate'",
        ),
        ("SHOW TABLES", "SHOW TABLES FROM sluicegate"),
        ("show create table events", "SHOW CREATE TABLE sluicegate.events"),
        ("SHOW COLUMNS FROM sluicegate.events", "SHOW COLUMNS FROM sluicegate.events"),
        ("EXPLAIN SELECT count() FROM events", "EXPLAIN PLAN SELECT count() FROM events"),
        ("DESCRIBE TABLE events", "DESCRIBE events"),
        ("WITH x AS (SELECT 1 AS a) SELECT a FROM x", "WITH x AS (SELECT 1 AS a) SELECT a FROM x"),
        ("SELECT 1 SETTINGS join_use_nulls = 1", "SELECT 1 SETTINGS join_use_nulls = 1"),
        (
            "SELECT countIf(a > 1), toTypeName(1) FROM events;",
            "SELECT countIf(a > 1), toTypeName(1) FROM events",
        ),
    ],
)
def test_allowed_queries_run_as_checked(query: str, runs: str) -> None:
    assert check_query(query, ALLOW) == runs


@pytest.mark.parametrize(
    "expression",
    [
        "any(file('/proc/self/environ'))",
        "sum((SELECT count() FROM system.processes))",
        "count() + sleep(1)",
        "uniqExact(dictGet('d', 'a', 1))",
    ],
)
def test_expressions_refuse_subqueries_and_unsafe_functions(expression: str) -> None:
    tree = sqlglot.parse_one(expression, dialect="clickhouse")
    with pytest.raises(SqlNotAllowed, match=r"^aggregation: "):
        check_expression(tree, ALLOW, "aggregation")


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM rejections",
        "SELECT * FROM sluicegate.rejections",
        "SELECT count() FROM events WHERE event_id IN (SELECT event_id FROM rejections)",
        "SELECT e.subject FROM events AS e JOIN rejections AS r ON e.event_id = r.event_id",
        "WITH r AS (SELECT * FROM `rejections`) SELECT * FROM r",
        "EXPLAIN SELECT * FROM rejections",
        "DESCRIBE TABLE rejections",
    ],
)
def test_admin_tables_are_refused_to_teams(query: str) -> None:
    with pytest.raises(SqlTableForbidden, match="readable by an admin only") as err:
        check_query(query, ALLOW)
    assert err.value.status == 403
    assert check_query(query, ALLOW, admin=True)  # an admin reads it
