"""The JSON Schema compatibility rules: each rule refuses what it should, names the path,
and leaves compatible changes alone."""

from __future__ import annotations

import json
from typing import Any

import pytest

from registry import Compatibility, SchemaType
from registry._compat import check
from registry._compat_json import RULES, reader_writer_incompatibilities
from registry._schemas import parse


def obj(props: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, **extra}
    if required is not None:
        out["required"] = required
    return out


S = {"type": "string"}
I = {"type": "integer"}  # noqa: E741  # reads as the schema's name

# (label, reader (the new schema under BACKWARD), writer (the old one), expected "path: RULE")
REFUSED: list[tuple[str, Any, Any, str]] = [
    (
        "type narrowed",
        obj({"a": I}),
        obj({"a": {"type": ["integer", "string"]}}),
        "/a: TYPE_NARROWED",
    ),
    ("number to integer", obj({"a": I}), obj({"a": {"type": "number"}}), "/a: TYPE_NARROWED"),
    (
        "enum narrowed",
        obj({"c": {"enum": ["a"]}}),
        obj({"c": {"enum": ["a", "b"]}}),
        "/c: ENUM_NARROWED",
    ),
    (
        "enum added to free string",
        obj({"c": {"type": "string", "enum": ["a"]}}),
        obj({"c": S}),
        "/c: ENUM_NARROWED",
    ),
    ("const added", obj({"v": {"const": 2}}), obj({"v": I}), "/v: CONST_CHANGED"),
    (
        "required added",
        obj({"a": S, "b": S}, ["a", "b"]),
        obj({"a": S, "b": S}, ["a"]),
        "/b: REQUIRED_ADDED",
    ),
    ("new required property", obj({"a": S, "n": I}, ["n"]), obj({"a": S}), "/n: REQUIRED_ADDED"),
    (
        "property removed from closed model",
        obj({"a": S}, additionalProperties=False),
        obj({"a": S, "b": S}, additionalProperties=False),
        "/b: PROPERTY_REMOVED",
    ),
    (
        "removed property must fit additionalProperties",
        obj({"a": S}, additionalProperties=I),
        obj({"a": S, "b": S}),
        "/b: TYPE_NARROWED",
    ),
    (
        "added property must fit writer's additionalProperties",
        obj({"a": S, "n": S}),
        obj({"a": S}, additionalProperties=I),
        "/n: TYPE_NARROWED",
    ),
    (
        "model closed",
        obj({"a": S}, additionalProperties=False),
        obj({"a": S}),
        "/: ADDITIONAL_PROPERTIES_NARROWED",
    ),
    ("nested object", obj({"o": obj({"x": I})}), obj({"o": obj({"x": S})}), "/o/x: TYPE_NARROWED"),
    (
        "array items",
        obj({"xs": {"type": "array", "items": I}}),
        obj({"xs": {"type": "array", "items": {"type": "number"}}}),
        "/xs/items: TYPE_NARROWED",
    ),
    (
        "array of objects",
        obj({"xs": {"type": "array", "items": obj({"k": S}, ["k"])}}),
        obj({"xs": {"type": "array", "items": obj({"k": S})}}),
        "/xs/items/k: REQUIRED_ADDED",
    ),
    (
        "minimum raised",
        obj({"n": {"type": "integer", "minimum": 5}}),
        obj({"n": {"type": "integer", "minimum": 0}}),
        "/n: BOUND_TIGHTENED",
    ),
    (
        "maxLength lowered",
        obj({"s": {"type": "string", "maxLength": 3}}),
        obj({"s": S}),
        "/s: BOUND_TIGHTENED",
    ),
    (
        "maxItems added",
        obj({"xs": {"type": "array", "maxItems": 2}}),
        obj({"xs": {"type": "array"}}),
        "/xs: BOUND_TIGHTENED",
    ),
    (
        "pattern added",
        obj({"s": {"type": "string", "pattern": "^a"}}),
        obj({"s": S}),
        "/s: PATTERN_CHANGED",
    ),
    (
        "format added",
        obj({"s": {"type": "string", "format": "email"}}),
        obj({"s": S}),
        "/s: FORMAT_CHANGED",
    ),
    (
        "multipleOf changed",
        obj({"n": {"type": "integer", "multipleOf": 3}}),
        obj({"n": {"type": "integer", "multipleOf": 2}}),
        "/n: MULTIPLE_OF_CHANGED",
    ),
    (
        "union branch dropped",
        obj({"v": {"anyOf": [S]}}),
        obj({"v": {"anyOf": [S, I]}}),
        "/v: NO_MATCHING_BRANCH",
    ),
    (
        "no reader branch",
        obj({"v": {"oneOf": [I, {"type": "boolean"}]}}),
        obj({"v": S}),
        "/v: NO_MATCHING_BRANCH",
    ),
    (
        "unknown keyword changed",
        obj({"a": S}, allOf=[{"required": ["a"]}]),
        obj({"a": S}),
        "/: KEYWORD_CHANGED",
    ),
    (
        "ref target narrowed",
        {"$defs": {"id": I}, **obj({"a": {"$ref": "#/$defs/id"}})},
        {"$defs": {"id": {"type": ["integer", "string"]}}, **obj({"a": {"$ref": "#/$defs/id"}})},
        "/a: TYPE_NARROWED",
    ),
    ("schema false", obj({"a": False}), obj({"a": S}), "/a: SCHEMA_CLOSED"),
]

ACCEPTED: list[tuple[str, Any, Any]] = [
    ("identical", obj({"a": S}, ["a"]), obj({"a": S}, ["a"])),
    ("optional property added", obj({"a": S, "b": I}), obj({"a": S})),
    ("property removed from open model", obj({"a": S}), obj({"a": S, "b": I})),
    ("type widened", obj({"a": {"type": ["integer", "null"]}}), obj({"a": I})),
    ("integer to number", obj({"a": {"type": "number"}}), obj({"a": I})),
    ("enum widened", obj({"c": {"enum": ["a", "b"]}}), obj({"c": {"enum": ["a"]}})),
    ("required dropped", obj({"a": S}), obj({"a": S}, ["a"])),
    (
        "bounds relaxed",
        obj({"n": {"type": "integer", "minimum": 0, "maximum": 10}}),
        obj({"n": {"type": "integer", "minimum": 1, "maximum": 5}}),
    ),
    ("model opened", obj({"a": S}), obj({"a": S}, additionalProperties=False)),
    ("union widened", obj({"v": {"anyOf": [S, I]}}), obj({"v": S})),
    (
        "descriptions changed",
        obj({"a": {**S, "description": "new"}}, title="T2"),
        obj({"a": {**S, "description": "old"}}, title="T1"),
    ),
    (
        "recursive refs",
        {
            "$defs": {"n": obj({"next": {"$ref": "#/$defs/n"}, "v": {"type": "number"}})},
            "$ref": "#/$defs/n",
        },
        {"$defs": {"n": obj({"next": {"$ref": "#/$defs/n"}, "v": I})}, "$ref": "#/$defs/n"},
    ),
]


@pytest.mark.parametrize(
    ("reader", "writer", "expected"),
    [pytest.param(r, w, e, id=label) for label, r, w, e in REFUSED],
)
def test_refused_with_path_and_rule(reader: Any, writer: Any, expected: str) -> None:
    found = [str(i) for i in reader_writer_incompatibilities(reader, writer)]
    assert any(m.startswith(expected) for m in found), found


@pytest.mark.parametrize(
    ("reader", "writer"), [pytest.param(r, w, id=label) for label, r, w in ACCEPTED]
)
def test_compatible_changes(reader: Any, writer: Any) -> None:
    assert reader_writer_incompatibilities(reader, writer) == []


def test_rules_are_a_table_of_documented_functions() -> None:
    assert len(RULES) >= 10
    assert all(rule.__doc__ for rule in RULES)


def test_levels_apply_directions() -> None:
    old = parse(json.dumps(obj({"a": S})), SchemaType.JSON)
    added_optional = parse(
        json.dumps(obj({"a": S, "b": I}, additionalProperties=False)), SchemaType.JSON
    )
    assert check(added_optional, [(1, old)], Compatibility.NONE) == []
    backward = check(added_optional, [(1, old)], Compatibility.BACKWARD)
    assert any("ADDITIONAL_PROPERTIES_NARROWED" in m for m in backward)
    assert check(added_optional, [(1, old)], Compatibility.FORWARD) == []
    full = check(added_optional, [(1, old)], Compatibility.FULL)
    assert full == backward


def test_every_failure_is_listed_not_only_the_first() -> None:
    messages = check(
        parse(json.dumps(obj({"a": I, "b": S, "c": {"enum": ["x"]}}, ["a", "b"])), SchemaType.JSON),
        [(3, parse(json.dumps(obj({"a": S, "c": S})), SchemaType.JSON))],
        Compatibility.BACKWARD,
    )
    assert sorted(m.split(": ")[0] + " " + m.split(": ")[1] for m in messages) == [
        "/a REQUIRED_ADDED",
        "/a TYPE_NARROWED",
        "/b REQUIRED_ADDED",
        "/c ENUM_NARROWED",
    ]
    assert all("version 3" in m for m in messages)
    rules = {m.split(": ")[1] for m in messages}
    assert {"TYPE_NARROWED", "REQUIRED_ADDED", "ENUM_NARROWED"} <= rules
