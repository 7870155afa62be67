"""Upcasting at read time: for every migration op, the ClickHouse SQL compiled from the
registry's read plan gives, on generated events of the old version, exactly the fields
`Registry.upcast` (what `POST /v1/subjects/{s}/upcast` answers) gives. Runs on chDB in
this process."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from materializer.features._fields import schema_fields
from materializer.features._upcast import field_reader
from registry import Principal, Registry, SchemaType
from sluicegate.errors import InvalidMigration

ADMIN = Principal("admin", admin=True)
V1 = {
    "type": "object",
    "properties": {
        "a": {"type": "integer"},
        "s": {"type": "string"},
        "f": {"type": "number"},
        "b": {"type": "boolean"},
        "t": {"type": "string"},
    },
    "required": ["a", "s", "f", "b", "t"],
}


def _v2(drop: tuple[str, ...] = (), **props: dict[str, Any]) -> dict[str, Any]:
    properties = {k: v for k, v in V1["properties"].items() if k not in drop}  # type: ignore[attr-defined]
    return {"type": "object", "properties": {**properties, **props}}


CASES: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
    "add": ([{"op": "add", "field": "channel", "default": "web"}], _v2(channel={"type": "string"})),
    "add_number": (
        [{"op": "add", "field": "weight", "default": 2.5}],
        _v2(weight={"type": "number"}),
    ),
    "rename": (
        [{"op": "rename", "from": "s", "to": "name"}],
        _v2(drop=("s",), name={"type": "string"}),
    ),
    "drop": ([{"op": "drop", "field": "t"}], _v2(drop=("t",))),
    "cast_int_to_string": (
        [{"op": "cast", "field": "a", "to": "string"}],
        _v2(drop=("a",), a={"type": "string"}),
    ),
    "cast_bool_to_string": (
        [{"op": "cast", "field": "b", "to": "string"}],
        _v2(drop=("b",), b={"type": "string"}),
    ),
    "cast_number_to_int": (
        [{"op": "cast", "field": "f", "to": "int"}],
        _v2(drop=("f",), f={"type": "integer"}),
    ),
    "cast_int_to_float": (
        [{"op": "cast", "field": "a", "to": "double"}],
        _v2(drop=("a",), a={"type": "number"}),
    ),
    "cast_int_to_boolean": (
        [{"op": "cast", "field": "a", "to": "boolean"}],
        _v2(drop=("a",), a={"type": "boolean"}),
    ),
    "derive_arithmetic": (
        [{"op": "derive", "field": "d", "expr": "a * 2 + a // 3 - a % 3"}],
        _v2(d={"type": "integer"}),
    ),
    "derive_division": (
        [{"op": "derive", "field": "d", "expr": "f / 4"}],
        _v2(d={"type": "number"}),
    ),
    "derive_text": (
        [{"op": "derive", "field": "d", "expr": "concat(lower(s), '-', a, b)"}],
        _v2(d={"type": "string"}),
    ),
    "derive_condition": (
        [{"op": "derive", "field": "d", "expr": "len(s) if b and a > 0 else max(a, 7)"}],
        _v2(d={"type": "integer"}),
    ),
    "derive_join": ([{"op": "derive", "field": "d", "expr": "s + t"}], _v2(d={"type": "string"})),
    "chain": (
        [
            {"op": "rename", "from": "t", "to": "title"},
            {"op": "add", "field": "channel", "default": "app"},
            {"op": "derive", "field": "shout", "expr": "upper(title)"},
            {"op": "drop", "field": "s"},
        ],
        _v2(
            drop=("t", "s"),
            title={"type": "string"},
            channel={"type": "string"},
            shout={"type": "string"},
        ),
    ),
}

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_events = st.fixed_dictionaries(
    {
        "a": st.integers(-(10**6), 10**6),
        "s": _text,
        "f": st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False),
        "b": st.booleans(),
        "t": _text,
    },
    optional={"channel": st.sampled_from(["web", "ios"])},
)


@pytest.fixture(scope="module")
def chdb(chdb_path: Path) -> Iterator[Any]:
    client = clickhouse_connect.get_client(interface="chdb", path=str(chdb_path))
    client.command("CREATE DATABASE IF NOT EXISTS upcast_sql")
    yield client
    client.command("DROP DATABASE IF EXISTS upcast_sql")
    client.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = Registry.open(f"sqlite:///{tmp_path_factory.mktemp('upcast') / 'registry.db'}")
    yield reg
    reg.close()


def _expected(value: Any, clickhouse_type: str) -> Any:
    """Python's upcast value as ClickHouse gives it back for the field's type."""
    if value is None:
        return None
    if "Float64" in clickhouse_type:
        return float(value)
    return value


@pytest.mark.parametrize("case", sorted(CASES))
def test_sql_upcast_equals_the_python_upcast(case: str, chdb: Any, registry: Registry) -> None:
    ops, v2 = CASES[case]
    subject = f"upcast.{case}"
    registry.register(subject, orjson.dumps(V1).decode(), SchemaType.JSON, principal=ADMIN)
    registry.register(
        subject, orjson.dumps(v2).decode(), SchemaType.JSON, principal=ADMIN, migration=ops
    )
    latest = registry.latest(subject)
    fields = schema_fields("JSON", latest.schema)
    reader = field_reader(registry, subject)
    table = f"upcast_sql.`{case}`"
    chdb.command(
        f"CREATE TABLE IF NOT EXISTS {table} (n UInt32, payload String, "
        "payload_version UInt32) ENGINE = Memory"
    )
    selects = ", ".join(reader.sql(path, ftype) for path, ftype in sorted(fields.items()))

    @settings(
        max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.lists(_events, min_size=1, max_size=40))
    def check(events: list[dict[str, Any]]) -> None:
        chdb.command(f"TRUNCATE TABLE {table}")
        chdb.insert(
            table,
            [[i, orjson.dumps(e).decode(), 1] for i, e in enumerate(events)],
            column_names=["n", "payload", "payload_version"],
        )
        rows = chdb.query(f"SELECT {selects} FROM {table} ORDER BY n").result_rows
        for event, row in zip(events, rows, strict=True):
            try:
                _, upcast = registry.upcast(subject, 1, event)
            except InvalidMigration:
                continue  # the loader dead-letters such an event; nothing to read
            for (path, ftype), got in zip(sorted(fields.items()), row, strict=True):
                want = _expected(upcast.get(path), ftype.clickhouse_type)
                if isinstance(want, float) and isinstance(got, float):
                    assert math.isclose(got, want, rel_tol=0, abs_tol=0) or got == want, (
                        case,
                        path,
                        event,
                        got,
                        want,
                    )
                else:
                    assert got == want, (case, path, event, got, want)

    check()
