"""Canonical forms: whitespace, key order and equivalent spellings never make a new schema;
invalid schemas are refused with a message naming the problem."""

from __future__ import annotations

import json

import pytest

from registry import SchemaType
from registry._schemas import parse, schema_type_of
from sluicegate.errors import InvalidSchema

AVRO = {
    "type": "record",
    "name": "Click",
    "namespace": "web",
    "fields": [
        {"name": "user", "type": {"type": "string"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "ref",
            "type": [
                "null",
                {"type": "record", "name": "Ref", "fields": [{"name": "url", "type": "string"}]},
            ],
            "default": None,
        },
        {"name": "again", "type": ["null", "Ref"], "default": None},
    ],
}


def test_avro_whitespace_key_order_and_spelling_do_not_matter() -> None:
    a = parse(json.dumps(AVRO), SchemaType.AVRO)
    b = parse(json.dumps(AVRO, indent=3, sort_keys=True), SchemaType.AVRO)
    spelled = json.loads(json.dumps(AVRO))
    spelled["name"] = "web.Click"
    del spelled["namespace"]
    spelled["fields"][0]["type"] = "string"
    spelled["fields"][3]["type"] = ["null", "web.Ref"]
    c = parse(json.dumps(spelled), SchemaType.AVRO)
    assert a.canonical == b.canonical == c.canonical
    assert '"name":"web.Ref"' in a.canonical
    assert '"logicalType":"timestamp-millis"' in a.canonical  # kept: it matters to readers


def test_avro_field_order_and_defaults_do_matter() -> None:
    a = parse(json.dumps(AVRO), SchemaType.AVRO)
    swapped = json.loads(json.dumps(AVRO))
    swapped["fields"][0], swapped["fields"][1] = swapped["fields"][1], swapped["fields"][0]
    assert parse(json.dumps(swapped), SchemaType.AVRO).canonical != a.canonical
    defaulted = json.loads(json.dumps(AVRO))
    defaulted["fields"][0]["default"] = "anon"
    assert parse(json.dumps(defaulted), SchemaType.AVRO).canonical != a.canonical


def test_avro_primitive_schema() -> None:
    assert parse('"string"', SchemaType.AVRO).canonical == '"string"'
    assert parse('{"type": "string"}', SchemaType.AVRO).canonical == '"string"'


def test_json_schema_keys_are_sorted() -> None:
    a = parse(
        '{"type": "object", "properties": {"b": {"type": "string"}, "a": {}}}', SchemaType.JSON
    )
    b = parse('{"properties":{"a":{},"b":{"type":"string"}},"type":"object"}', SchemaType.JSON)
    assert a.canonical == b.canonical
    assert a.parsed == {"type": "object", "properties": {"a": {}, "b": {"type": "string"}}}


def test_json_schema_2020_12_accepted() -> None:
    text = json.dumps(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "prefixItems": [{"type": "string"}],
        }
    )
    assert parse(text, SchemaType.JSON).parsed["$schema"].endswith("2020-12/schema")


@pytest.mark.parametrize(
    ("text", "schema_type", "needle"),
    [
        ("{nope", SchemaType.AVRO, "not valid JSON"),
        ("", SchemaType.AVRO, "empty"),
        ('{"type": "record", "name": "X"}', SchemaType.AVRO, "fields"),
        (
            '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}',
            SchemaType.AVRO,
            "nope",
        ),
        (
            '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "int", "default": "x"}]}',
            SchemaType.AVRO,
            "Default",
        ),
        ('{"type": "enum", "name": "E", "symbols": ["A", "A"]}', SchemaType.AVRO, "invalid"),
        ('{"type": 5}', SchemaType.JSON, "/type"),
        ("[1, 2]", SchemaType.JSON, "JSON object"),
    ],
)
def test_invalid_schemas_are_refused(text: str, schema_type: SchemaType, needle: str) -> None:
    with pytest.raises(InvalidSchema) as exc:
        parse(text, schema_type)
    assert exc.value.error_code == 42201
    assert needle in exc.value.message


def test_schema_type_names() -> None:
    assert schema_type_of(None) is SchemaType.AVRO
    assert schema_type_of("json") is SchemaType.JSON
    with pytest.raises(InvalidSchema, match="PROTOBUF"):
        schema_type_of("PROTOBUF")
