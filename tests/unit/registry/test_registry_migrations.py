"""Migration rules: the operations, their validation, the check at registration (generated
instances of the old schema) and upcasting through a chain of versions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from registry_samples import avro

from registry import Principal, Registry, SchemaType
from registry._migration import step, validate, verify
from registry._schemas import parse
from sluicegate.errors import IncompatibleSchema, InvalidMigration


def run(ops: list[dict[str, Any]], payload: dict[str, Any]) -> dict[str, Any]:
    return step(validate(ops), 2)(payload)


def test_operations() -> None:
    payload = {"first": "Ann", "age": "41", "old": 1, "loc": {"city": "Oslo"}, "p": 2.5, "q": 4}
    out = run(
        [
            {"op": "rename", "from": "first", "to": "name"},
            {"op": "add", "field": "country", "default": "NO"},
            {"op": "add", "field": "name", "default": "ignored: present"},
            {"op": "drop", "field": "old"},
            {"op": "cast", "field": "age", "to": "int"},
            {"op": "move", "from": "loc.city", "to": "city"},
            {"op": "move", "from": "country", "to": "address.country"},
            {"op": "derive", "field": "total", "expr": "p * q"},
            {"op": "derive", "field": "label", "expr": "concat(upper(name), '-', str(age))"},
        ],
        payload,
    )
    assert out == {
        "name": "Ann",
        "age": 41,
        "loc": {},
        "p": 2.5,
        "q": 4,
        "city": "Oslo",
        "address": {"country": "NO"},
        "total": 10.0,
        "label": "ANN-41",
    }
    assert payload["first"] == "Ann"  # the input is never mutated


def test_casts() -> None:
    assert run([{"op": "cast", "field": "v", "to": "string"}], {"v": True}) == {"v": "true"}
    assert run([{"op": "cast", "field": "v", "to": "boolean"}], {"v": "yes"}) == {"v": True}
    assert run([{"op": "cast", "field": "v", "to": "double"}], {"v": 3}) == {"v": 3.0}
    assert run([{"op": "cast", "field": "v", "to": "long"}], {"v": None}) == {"v": None}
    with pytest.raises(InvalidMigration, match="op 0"):
        run([{"op": "cast", "field": "v", "to": "int"}], {"v": "abc"})


@pytest.mark.parametrize(
    ("ops", "needle"),
    [
        ([], "non-empty"),
        ([{"op": "explode"}], "migration[0].op"),
        ([{"op": "rename", "from": "a"}], "migration[0].to"),
        ([{"op": "drop", "field": "a..b"}], "migration[0].field"),
        ([{"op": "cast", "field": "a", "to": "decimal"}], "migration[0].to"),
        ([{"op": "derive", "field": "a", "expr": "1 +"}], "migration[0].expr"),
    ],
)
def test_invalid_migrations(ops: list[dict[str, Any]], needle: str) -> None:
    with pytest.raises(InvalidMigration) as exc:
        validate(ops)
    assert needle in exc.value.message


def test_expressions_are_sandboxed() -> None:
    with pytest.raises(InvalidMigration):
        run([{"op": "derive", "field": "x", "expr": "__import__('os').getcwd()"}], {})
    with pytest.raises(InvalidMigration, match="nope"):
        run([{"op": "derive", "field": "x", "expr": "nope + 1"}], {})


JSON_V1 = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "string", "pattern": "^[0-9]{1,2}$"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}
JSON_V2 = {
    "type": "object",
    "properties": {
        "person": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
        "age": {"type": "integer", "minimum": 0, "maximum": 99},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["person", "age"],
    "additionalProperties": False,
}
GOOD = [
    {"op": "move", "from": "name", "to": "person.name"},
    {"op": "cast", "field": "age", "to": "int"},
]


def test_verify_json_with_generated_instances() -> None:
    old, new = (
        parse(json.dumps(JSON_V1), SchemaType.JSON),
        parse(json.dumps(JSON_V2), SchemaType.JSON),
    )
    verify(validate(GOOD), old, new, from_version=1)
    with pytest.raises(InvalidMigration) as exc:
        verify(validate(GOOD[:1]), old, new, from_version=1)
    assert "new schema rejects at /age" in exc.value.message
    assert "old event" in exc.value.message


def test_verify_avro_with_generated_instances() -> None:
    old = parse(avro(("user", "string"), ("cents", "int")), SchemaType.AVRO)
    new = parse(avro(("user_id", "string"), ("amount", "double")), SchemaType.AVRO)
    ops = [
        {"op": "rename", "from": "user", "to": "user_id"},
        {"op": "derive", "field": "amount", "expr": "cents / 100"},
        {"op": "drop", "field": "cents"},
    ]
    verify(validate(ops), old, new, from_version=1)
    with pytest.raises(InvalidMigration, match="amount"):
        verify(validate(ops[:1]), old, new, from_version=1)


def test_registration_with_migration_and_upcast_chain(reg: Registry, admin: Principal) -> None:
    reg.register("m", json.dumps(JSON_V1), SchemaType.JSON, principal=admin)
    with pytest.raises(IncompatibleSchema):
        reg.register("m", json.dumps(JSON_V2), SchemaType.JSON, principal=admin)
    with pytest.raises(InvalidMigration):
        reg.register("m", json.dumps(JSON_V2), SchemaType.JSON, principal=admin, migration=GOOD[:1])
    res = reg.register("m", json.dumps(JSON_V2), SchemaType.JSON, principal=admin, migration=GOOD)
    assert res.migrated
    assert res.messages[0].startswith("accepted because the migration from version 1")
    assert any("/person: REQUIRED_ADDED" in m for m in res.messages)
    v3 = json.loads(json.dumps(JSON_V2))
    v3["properties"]["adult"] = {"type": "boolean"}
    ok = reg.register(
        "m",
        json.dumps(v3),
        SchemaType.JSON,
        principal=admin,
        migration=[{"op": "derive", "field": "adult", "expr": "age >= 18"}],
    )
    assert (ok.version, ok.migrated) == (3, False)  # compatible anyway: no "migrated"
    assert reg.upcast("m", 1, {"name": "Bo", "age": "30"}) == (
        3,
        {"person": {"name": "Bo"}, "age": 30, "adult": True},
    )
    assert reg.upcast("m", 2, {"person": {"name": "Al"}, "age": 7}) == (
        3,
        {"person": {"name": "Al"}, "age": 7, "adult": False},
    )
    assert reg.upcast("m", 3, {"x": 1}) == (3, {"x": 1})
    assert reg.migration("m", 2) == GOOD


def test_avro_upcast_uses_schema_resolution(reg: Registry, admin: Principal) -> None:
    reg.register("a", avro(("id", "string"), ("n", "int")), SchemaType.AVRO, principal=admin)
    reg.register(
        "a",
        avro(("id", "string"), ("n", "long"), ("w", "double", 1.5)),
        SchemaType.AVRO,
        principal=admin,
    )
    assert reg.upcast("a", 1, {"id": "x", "n": 4}) == (2, {"id": "x", "n": 4, "w": 1.5})
    with pytest.raises(InvalidMigration, match="version 1"):
        reg.upcast("a", 1, {"id": "x", "n": "not a number"})


def test_migration_needs_a_previous_version(reg: Registry, admin: Principal) -> None:
    with pytest.raises(InvalidMigration, match="previous version"):
        reg.register(
            "fresh",
            avro(("a", "int")),
            SchemaType.AVRO,
            principal=admin,
            migration=[{"op": "drop", "field": "a"}],
        )
