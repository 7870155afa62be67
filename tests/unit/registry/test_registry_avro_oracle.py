"""Avro compatibility verdicts, checked against the Apache `avro` package's
ReaderWriterCompatibilityChecker across all seven levels, including transitive histories."""

from __future__ import annotations

import json
from typing import Any

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from registry import Compatibility, SchemaType
from registry._compat import check
from registry._schemas import parse


def rec(*fields: dict[str, Any], name: str = "Event", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "acme", "fields": list(fields), **extra}


def f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


ENUM_AB = {"type": "enum", "name": "Color", "symbols": ["A", "B"]}
ENUM_ABC = {"type": "enum", "name": "Color", "symbols": ["A", "B", "C"]}
ENUM_AB_DEFAULT = {"type": "enum", "name": "Color", "symbols": ["A", "B"], "default": "A"}
FIXED4 = {"type": "fixed", "name": "Hash", "size": 4}
FIXED8 = {"type": "fixed", "name": "Hash", "size": 8}
ADDRESS = rec(f("street", "string"), name="Address")
ADDRESS_ZIP = rec(f("street", "string"), f("zip", "string", default=""), name="Address")
ADDRESS_ZIP_REQ = rec(f("street", "string"), f("zip", "string"), name="Address")
LINKED = rec(f("value", "int"), f("next", ["null", "Node"], default=None), name="Node")
LINKED_LONG = rec(f("value", "long"), f("next", ["null", "Node"], default=None), name="Node")

# (label, reader-side / newer schema, writer-side / older schema) pairs; each is run in
# both directions under every level below.
PAIRS: list[tuple[str, Any, Any]] = [
    ("identical", rec(f("a", "int")), rec(f("a", "int"))),
    (
        "add field with default",
        rec(f("a", "int"), f("b", "string", default="x")),
        rec(f("a", "int")),
    ),
    ("add field without default", rec(f("a", "int"), f("b", "string")), rec(f("a", "int"))),
    ("remove field", rec(f("a", "int")), rec(f("a", "int"), f("b", "string"))),
    ("int to long", rec(f("a", "long")), rec(f("a", "int"))),
    ("int to float", rec(f("a", "float")), rec(f("a", "int"))),
    ("long to double", rec(f("a", "double")), rec(f("a", "long"))),
    ("float to double", rec(f("a", "double")), rec(f("a", "float"))),
    ("long to int", rec(f("a", "int")), rec(f("a", "long"))),
    ("string to bytes", rec(f("a", "bytes")), rec(f("a", "string"))),
    ("string to int", rec(f("a", "int")), rec(f("a", "string"))),
    ("boolean to string", rec(f("a", "string")), rec(f("a", "boolean"))),
    ("make nullable", rec(f("a", ["null", "string"], default=None)), rec(f("a", "string"))),
    (
        "union widened",
        rec(f("a", ["null", "string", "int"], default=None)),
        rec(f("a", ["null", "string"], default=None)),
    ),
    (
        "union promoted member",
        rec(f("a", ["null", "long"], default=None)),
        rec(f("a", ["null", "int"], default=None)),
    ),
    ("enum symbol added", rec(f("c", ENUM_ABC)), rec(f("c", ENUM_AB))),
    ("enum with default loses symbol", rec(f("c", ENUM_AB_DEFAULT)), rec(f("c", ENUM_ABC))),
    ("enum renamed", rec(f("c", {**ENUM_AB, "name": "Shade"})), rec(f("c", ENUM_AB))),
    (
        "enum renamed with alias",
        rec(f("c", {**ENUM_AB, "name": "Shade", "aliases": ["acme.Color"]})),
        rec(f("c", ENUM_AB)),
    ),
    ("fixed resized", rec(f("h", FIXED8)), rec(f("h", FIXED4))),
    ("fixed same", rec(f("h", FIXED4)), rec(f("h", FIXED4))),
    ("field renamed with alias", rec(f("b", "int", aliases=["a"])), rec(f("a", "int"))),
    ("field renamed without alias", rec(f("b", "int")), rec(f("a", "int"))),
    ("record renamed", rec(f("a", "int"), name="Other"), rec(f("a", "int"))),
    (
        "record renamed with alias",
        rec(f("a", "int"), name="Other", aliases=["acme.Event"]),
        rec(f("a", "int")),
    ),
    ("nested optional field", rec(f("addr", ADDRESS_ZIP)), rec(f("addr", ADDRESS))),
    ("nested required field", rec(f("addr", ADDRESS_ZIP_REQ)), rec(f("addr", ADDRESS))),
    (
        "array items promoted",
        rec(f("xs", {"type": "array", "items": "long"})),
        rec(f("xs", {"type": "array", "items": "int"})),
    ),
    (
        "array items changed",
        rec(f("xs", {"type": "array", "items": "string"})),
        rec(f("xs", {"type": "array", "items": "int"})),
    ),
    (
        "map values promoted",
        rec(f("m", {"type": "map", "values": "double"})),
        rec(f("m", {"type": "map", "values": "float"})),
    ),
    (
        "map to array",
        rec(f("m", {"type": "array", "items": "string"})),
        rec(f("m", {"type": "map", "values": "string"})),
    ),
    ("recursive promoted", rec(f("head", LINKED_LONG)), rec(f("head", LINKED))),
    (
        "logical type added",
        rec(f("ts", {"type": "long", "logicalType": "timestamp-millis"})),
        rec(f("ts", "long")),
    ),
    (
        "primitive to union of others",
        rec(f("a", ["null", "boolean"], default=None)),
        rec(f("a", "int")),
    ),
]

LEVELS = list(Compatibility)


def _oracle(reader: Any, writer: Any) -> bool:
    r = avro.schema.parse(json.dumps(reader))
    w = avro.schema.parse(json.dumps(writer))
    result = ReaderWriterCompatibilityChecker().get_compatibility(r, w)
    return result.compatibility is SchemaCompatibilityType.compatible


def _expected(new: Any, history: list[Any], level: Compatibility) -> bool:
    if level is Compatibility.NONE:
        return True
    against = history if level.transitive else history[-1:]
    return all(
        (not level.backward or _oracle(new, old)) and (not level.forward or _oracle(old, new))
        for old in against
    )


def _ours(new: Any, history: list[Any], level: Compatibility) -> list[str]:
    parsed_new = parse(json.dumps(new), SchemaType.AVRO)
    previous = [(i + 1, parse(json.dumps(s), SchemaType.AVRO)) for i, s in enumerate(history)]
    return check(parsed_new, previous, level)


CASES = [
    pytest.param(new, [old], level, id=f"{label}|{direction}|{level.value}")
    for label, a, b in PAIRS
    for direction, new, old in (("new-reads-old", a, b), ("old-reads-new", b, a))
    for level in LEVELS
]

# Transitive histories: the latest version alone accepts the change, an older one does not.
HISTORIES = [
    (
        "field dropped then re-added without default",
        [rec(f("a", "int"), f("b", "int")), rec(f("a", "int"))],
        rec(f("a", "int"), f("b", "string", default="x")),
    ),
    (
        "default removed in v2, new field required",
        [rec(f("a", "int")), rec(f("a", "int"), f("b", "string", default=""))],
        rec(f("a", "int"), f("b", "string")),
    ),
    (
        "promotion chain int -> long -> float",
        [rec(f("a", "int")), rec(f("a", "long"))],
        rec(f("a", "float")),
    ),
    (
        "type flipped back",
        [rec(f("a", "string")), rec(f("a", ["null", "string", "int"], default=None))],
        rec(f("a", ["null", "int"], default=None)),
    ),
    (
        "enum grows over three versions",
        [rec(f("c", ENUM_AB)), rec(f("c", ENUM_ABC))],
        rec(f("c", ENUM_ABC)),
    ),
]
HISTORY_CASES = [
    pytest.param(new, history, level, id=f"history:{label}|{level.value}")
    for label, history, new in HISTORIES
    for level in LEVELS
]


@pytest.mark.parametrize(("new", "history", "level"), CASES + HISTORY_CASES)
def test_verdict_matches_avro_oracle(new: Any, history: list[Any], level: Compatibility) -> None:
    messages = _ours(new, history, level)
    assert (not messages) == _expected(new, history, level), messages


def test_case_set_is_large_and_mixed() -> None:
    assert len(CASES) + len(HISTORY_CASES) >= 40
    verdicts = {
        level: {_expected(p.values[0], p.values[1], level) for p in CASES + HISTORY_CASES}
        for level in LEVELS
        if level is not Compatibility.NONE
    }
    assert all(v == {True, False} for v in verdicts.values()), verdicts


def test_transitive_levels_differ_from_plain_ones_on_histories() -> None:
    differing = [
        label
        for label, history, new in HISTORIES
        if _expected(new, history, Compatibility.BACKWARD)
        != _expected(new, history, Compatibility.BACKWARD_TRANSITIVE)
    ]
    assert differing


def test_every_refusal_names_the_path_and_rule() -> None:
    new = rec(f("a", "string"), f("addr", ADDRESS_ZIP_REQ), f("c", ENUM_AB))
    old = rec(f("a", "int"), f("addr", ADDRESS), f("c", ENUM_ABC))
    messages = _ours(new, [old], Compatibility.BACKWARD)
    assert any(m.startswith("/a: TYPE_MISMATCH") for m in messages), messages
    assert any(m.startswith("/addr/zip: READER_FIELD_MISSING_DEFAULT_VALUE") for m in messages)
    assert any(m.startswith("/c/symbols: MISSING_ENUM_SYMBOLS") for m in messages)
    assert all("version 1" in m for m in messages)
