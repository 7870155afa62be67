"""Row shapes: inference from the catalog and the row, fitting, the JSON Schema, the
migration rules between shapes, deterministic event ids."""

from __future__ import annotations

import jsonschema
import pytest

from cdc import COMMIT_TIME_FIELD, event_id_of, fits, infer_shape, json_schema, migration_between
from cdc._connect import first_line
from cdc._shape import CatalogColumn, Column, Shape, json_type_of_pg, shape_from_schema
from sluicegate.errors import InvalidMigration

CATALOG = (
    CatalogColumn(
        "id", "int8", "integer", nullable=False, default_expr="nextval('t_id_seq'::regclass)"
    ),
    CatalogColumn("name", "text", "string", nullable=False),
    CatalogColumn("qty", "int4", "integer", nullable=True),
    CatalogColumn("price", "numeric", "string", nullable=True),
    CatalogColumn("status", "text", "string", nullable=False, default_expr="'new'::text"),
    CatalogColumn("email", "text", "string", nullable=True),
)
ROW = {"id": 1, "name": "a", "qty": None, "price": "1.50", "status": "new"}


def _schema(shape: Shape) -> dict:
    return json_schema(shape, title="cdc.x.t", commit_time_field=COMMIT_TIME_FIELD)


def test_pg_types_map_to_debezium_json() -> None:
    assert json_type_of_pg("int8", "N", "b") == "integer"
    assert json_type_of_pg("float8", "N", "b") == "number"
    assert json_type_of_pg("numeric", "N", "b") == "string"  # decimal.handling.mode=string
    assert json_type_of_pg("timestamptz", "D", "b") == "string"  # isostring
    assert json_type_of_pg("jsonb", "U", "b") == "string"
    assert json_type_of_pg("_int4", "A", "b") == "array"
    assert json_type_of_pg("mood", "E", "e") == "string"
    assert json_type_of_pg("point", "G", "b") is None


def test_infer_from_catalog_and_row() -> None:
    shape = infer_shape(ROW, CATALOG, key=["id"], excluded=["email"])
    by = {c.name: c for c in shape.columns}
    assert shape.names == ("id", "name", "qty", "price", "status")
    assert by["id"] == Column("id", "integer", nullable=False, required=True)
    assert by["name"].required and not by["name"].nullable
    assert by["qty"].nullable and not by["qty"].required
    assert by["status"].default == "new" and not by["status"].required
    assert fits(shape, ROW)


def test_schema_validates_rows_and_is_closed() -> None:
    schema = _schema(infer_shape(ROW, CATALOG, key=["id"]))
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["id", "name", COMMIT_TIME_FIELD]
    assert schema["properties"][COMMIT_TIME_FIELD] == {"type": "string", "format": "date-time"}
    jsonschema.validate({**ROW, COMMIT_TIME_FIELD: "2026-01-01T00:00:00.000Z"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**ROW, "extra": 1, COMMIT_TIME_FIELD: "x"}, schema)


def test_new_column_or_retype_does_not_fit() -> None:
    shape = infer_shape(ROW, CATALOG, key=["id"])
    assert not fits(shape, {**ROW, "note": None})  # added column
    assert not fits(shape, {k: v for k, v in ROW.items() if k != "qty"})  # dropped column
    assert not fits(shape, {**ROW, "qty": "7"})  # retyped int -> text
    assert not fits(shape, {**ROW, "name": None})  # NOT NULL column null
    assert fits(shape, {**ROW, "qty": 7})
    assert not fits(shape, {**ROW, "qty": True})  # bool is not an integer


def test_without_catalog_the_row_decides() -> None:
    shape = infer_shape({"id": 1, "v": 1.5, "s": None, "b": False}, None, key=["id"])
    by = {c.name: c for c in shape.columns}
    assert by["id"] == Column("id", "integer", nullable=False, required=True)
    assert by["v"] == Column("v", "number", nullable=True, required=False)
    assert by["s"].json_type is None  # unknown type: any value
    assert fits(shape, {"id": 2, "v": 3, "s": "x", "b": True})


def test_catalog_behind_the_row_falls_back_to_values() -> None:
    # the row still has a column the table has dropped since
    shape = infer_shape({**ROW, "gone": 5}, CATALOG, key=["id"])
    assert {c.name: c for c in shape.columns}["gone"] == Column("gone", "integer", True, False)


def test_catalog_only_shape() -> None:
    shape = infer_shape(None, CATALOG, key=["id"], excluded=["email"])
    assert shape.names == ("id", "name", "qty", "price", "status")


@pytest.mark.parametrize(
    ("typname", "json_type", "expr", "value"),
    [
        ("int4", "integer", "0", 0),
        ("int4", "integer", "'-3'::integer", None),
        ("int4", "integer", "(-3)", -3),
        ("float8", "number", "1.5", 1.5),
        ("bool", "boolean", "true", True),
        ("text", "string", "'it''s'::text", "it's"),
        ("numeric", "string", "0.00", "0.00"),
        ("timestamptz", "string", "now()", None),
    ],
)
def test_constant_defaults(typname: str, json_type: str, expr: str, value: object) -> None:
    assert CatalogColumn("c", typname, json_type, False, expr).default_value() == value


def test_shape_round_trips_through_its_schema() -> None:
    shape = infer_shape(ROW, CATALOG, key=["id"])
    back = shape_from_schema(_schema(shape), commit_time_field=COMMIT_TIME_FIELD)
    assert back is not None
    assert {c.name: c for c in back.columns} == {c.name: c for c in shape.columns}
    assert (
        shape_from_schema(
            {"type": "object", "properties": {"a": {}}}, commit_time_field=COMMIT_TIME_FIELD
        )
        is None
    )


def test_migration_between_shapes() -> None:
    old = infer_shape(ROW, CATALOG, key=["id"])
    added = Shape((*old.columns, Column("note", "string", True)))
    assert migration_between(old, added) == [{"op": "add", "field": "note", "default": None}]
    dropped = Shape(tuple(c for c in old.columns if c.name != "name"))
    assert migration_between(old, dropped) == [{"op": "drop", "field": "name"}]
    retyped = Shape(
        tuple(Column("qty", "string", True) if c.name == "qty" else c for c in old.columns)
    )
    assert migration_between(old, retyped) == [{"op": "cast", "field": "qty", "to": "string"}]
    defaulted = Shape((*old.columns, Column("n", "integer", False, False, 0)))
    assert migration_between(old, defaulted) == [{"op": "add", "field": "n", "default": 0}]
    with pytest.raises(InvalidMigration, match="'n2' is NOT NULL without a constant default"):
        migration_between(old, Shape((*old.columns, Column("n2", "integer", False, True))))


def test_event_ids_are_deterministic() -> None:
    a = event_id_of("cdc.x.t", "c", 123, "1", None)
    assert a == event_id_of("cdc.x.t", "c", 123, "1", None)
    assert a != event_id_of("cdc.x.t", "u", 123, "1", None)
    assert a != event_id_of("cdc.x.t", "c", 124, "1", None)
    # snapshot rows share an LSN: their content tells them apart
    assert event_id_of("cdc.x.t", "r", 9, "k", b'{"a":1}') != event_id_of(
        "cdc.x.t", "r", 9, "k", b'{"a":2}'
    )


def test_first_line_of_a_trace() -> None:
    trace = (
        "org.apache.kafka.connect.errors.ConnectException: Connection refused\n"
        "\tat io.debezium.Foo.bar(Foo.java:1)\n"
    )
    assert first_line(trace) == "Connection refused"
    assert first_line("plain words") == "plain words"
    assert first_line(None) is None
