"""The instance generator behind the migration check covers the keywords events use."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator

from registry._instances import instances

RICH = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {
        "money": {
            "type": "object",
            "properties": {
                "amount": {"type": "integer", "minimum": 0, "multipleOf": 5},
                "currency": {"enum": ["EUR", "USD"]},
            },
            "required": ["amount", "currency"],
        }
    },
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "at": {"type": "string", "format": "date-time"},
        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"},
        "price": {"$ref": "#/$defs/money"},
        "lines": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {"q": {"type": "number", "exclusiveMinimum": 0}},
                "required": ["q"],
            },
        },
        "note": {"oneOf": [{"type": "null"}, {"type": "string", "maxLength": 5}]},
        "kind": {"const": "order"},
        "flags": {"type": "array", "uniqueItems": True, "items": {"type": "boolean"}},
    },
    "required": ["id", "at", "sku", "price", "lines", "kind"],
    "additionalProperties": False,
}


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(instances(RICH))
def test_generated_instances_are_valid(instance: Any) -> None:
    assert Draft202012Validator(RICH).is_valid(instance)
    assert {"id", "at", "sku", "price", "lines", "kind"} <= instance.keys()
