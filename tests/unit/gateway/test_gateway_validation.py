"""Validation: every violation named with path, rule and message; compiled validators
agree with the jsonschema reference; Avro subjects take JSON."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import jsonschema
import orjson
import pytest
from gateway_fixtures import CLICK_AVRO, ORDER_SCHEMA

from gateway import Validators
from gateway._validation import MAX_VIOLATIONS


def _schema(schema_id: int, kind: str, doc: Any) -> SimpleNamespace:
    return SimpleNamespace(id=schema_id, schema_type=kind, schema=orjson.dumps(doc).decode())


ORDER = _schema(1, "JSON", ORDER_SCHEMA)
CLICK = _schema(2, "AVRO", CLICK_AVRO)
GOOD_ORDER = {"order_id": "o1", "ts": "2026-01-01T10:00:00Z", "amount": 3.5, "shop": {"id": 7}}


def test_valid_json_event_has_no_violations() -> None:
    payload, violations = Validators().check(ORDER, GOOD_ORDER)
    assert violations == []
    assert payload is GOOD_ORDER


def test_every_violation_is_listed_with_path_and_rule() -> None:
    bad = {"order_id": 5, "amount": -1, "shop": {"id": "x"}, "items": ["a", 2], "extra": True}
    _, violations = Validators().check(ORDER, bad)
    found = {(v.path, v.rule) for v in violations}
    assert found == {
        ("$.order_id", "type"),
        ("$", "required"),  # ts
        ("$.amount", "minimum"),
        ("$.shop.id", "type"),
        ("$.items[1]", "type"),
        ("$", "additionalProperties"),
    }
    assert all(v.message for v in violations)


def test_format_date_time_is_asserted() -> None:
    _, violations = Validators().check(ORDER, {**GOOD_ORDER, "ts": "yesterday"})
    assert [(v.path, v.rule) for v in violations] == [("$.ts", "format")]


@pytest.mark.parametrize(
    "payload",
    [
        GOOD_ORDER,
        {**GOOD_ORDER, "amount": "1"},
        {**GOOD_ORDER, "items": [1]},
        {"order_id": "x"},
        [],
        None,
        {**GOOD_ORDER, "shop": {}},
        {**GOOD_ORDER, "amount": 1e308},
        {**GOOD_ORDER, "amount": True},
    ],
)
def test_compiled_validator_agrees_with_reference(payload: Any) -> None:
    reference = jsonschema.Draft7Validator(ORDER_SCHEMA, format_checker=jsonschema.FormatChecker())
    _, violations = Validators().check(ORDER, payload)
    assert (violations == []) == reference.is_valid(payload)


def test_validators_are_cached_per_schema_id() -> None:
    validators = Validators()
    validators.check(ORDER, GOOD_ORDER)
    first = validators._cache[1]
    validators.check(ORDER, {"x": 1})
    assert validators._cache[1] is first


def test_avro_accepts_json_and_converts() -> None:
    datum, violations = Validators().check(
        CLICK, {"user": "u1", "at": "2026-01-01T00:00:00.250Z", "tags": ["a"]}
    )
    assert violations == []
    assert datum == {
        "user": "u1",
        "at": dt.datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=dt.UTC),
        "page": None,
        "tags": ["a"],
    }


def test_avro_violations_name_each_field() -> None:
    _, violations = Validators().check(
        CLICK, {"at": "soon", "page": 3, "tags": ["ok", 1], "nope": 1}
    )
    found = {(v.path, v.rule) for v in violations}
    assert found == {
        ("$.user", "required"),
        ("$.at", "timestamp-millis"),
        ("$.page", "union"),
        ("$.tags[1]", "type"),
        ("$.nope", "unknown_field"),
    }


def test_avro_int_range_and_bytes() -> None:
    schema = _schema(
        3,
        "AVRO",
        {
            "type": "record",
            "name": "R",
            "fields": [
                {"name": "n", "type": "int"},
                {"name": "b", "type": "bytes"},
                {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
            ],
        },
    )
    datum, violations = Validators().check(schema, {"n": 2**31, "b": "\x00\xff", "e": "C"})
    assert {(v.path, v.rule) for v in violations} == {("$.n", "range"), ("$.e", "enum")}
    assert datum["b"] == b"\x00\xff"


def test_violation_list_is_capped() -> None:
    schema = _schema(
        4,
        "JSON",
        {"type": "object", "properties": {"xs": {"type": "array", "items": {"type": "integer"}}}},
    )
    _, violations = Validators().check(schema, {"xs": ["a"] * 5000})
    assert len(violations) == MAX_VIOLATIONS + 1
    assert violations[0].path == "$.xs[0]"
    assert violations[-1].rule == "limit"
