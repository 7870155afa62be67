"""Body parsing: content types, malformed JSON, depth, NDJSON, batch limits."""

from __future__ import annotations

import pytest

from gateway._body import JSON, NDJSON, media_type, parse_batch, require_media
from sluicegate.body import parse_json
from sluicegate.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/json", JSON),
        ("Application/JSON; charset=utf-8", JSON),
        ("application/cloudevents+json", JSON),
        ("application/x-ndjson", NDJSON),
        ("application/jsonl", NDJSON),
        ("text/plain", "text/plain"),
        (None, None),
    ],
)
def test_media_type(header: str | None, expected: str | None) -> None:
    assert media_type(header) == expected


def test_single_event_refuses_ndjson_and_other_types() -> None:
    with pytest.raises(UnsupportedMediaType):
        require_media("application/x-ndjson", ndjson=False)
    with pytest.raises(UnsupportedMediaType):
        require_media(None, ndjson=True)
    assert require_media("application/x-ndjson", ndjson=True) == NDJSON


@pytest.mark.parametrize(
    "body", [b"", b"   ", b"{", b'{"a": }', b"\xff\xfe", b"[" * 100_000, b"NaN"]
)
def test_malformed_json_is_a_400(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        parse_json(body)


def test_deep_nesting_is_a_400_not_a_crash() -> None:
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    with pytest.raises(MalformedBody, match=r"depth|recursion"):
        parse_json(deep)


def test_batch_must_be_a_non_empty_array() -> None:
    with pytest.raises(MalformedBody):
        parse_batch(b'{"a": 1}', JSON, 10)
    with pytest.raises(MalformedBody):
        parse_batch(b"[]", JSON, 10)
    assert [i.value for i in parse_batch(b'[{"a": 1}, 2]', JSON, 10)] == [{"a": 1}, 2]


def test_batch_count_limit() -> None:
    with pytest.raises(PayloadTooLarge):
        parse_batch(b"[1,2,3]", JSON, 2)
    with pytest.raises(PayloadTooLarge):
        parse_batch(b"1\n2\n3\n", NDJSON, 2)


def test_ndjson_bad_line_fails_alone() -> None:
    items = parse_batch(b'{"a": 1}\n\n{oops\n{"b": 2}\n', NDJSON, 10)
    assert [i.value for i in items] == [{"a": 1}, None, {"b": 2}]
    assert items[1].error is not None
    assert "line 3" in items[1].error.message
    assert items[1].text == "{oops"
