"""The gateway's request bodies: content types checked, batches parsed (a JSON array or
NDJSON, a bad line failing alone); reading and JSON parsing are sluicegate.body's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from sluicegate.body import parse_json
from sluicegate.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType

__all__ = [
    "JSON",
    "NDJSON",
    "RawItem",
    "media_type",
    "parse_batch",
    "require_media",
]

JSON = "application/json"
NDJSON = "application/x-ndjson"
_NDJSON_ALIASES = {NDJSON, "application/ndjson", "application/jsonl", "application/x-jsonlines"}


@dataclass(slots=True)
class RawItem:
    """One item of a batch body: its parsed value, or the reason it could not be parsed."""

    value: Any
    text: str | None = None  # the raw text of an NDJSON line (kept for dead letters)
    error: MalformedBody | None = None


def media_type(content_type: str | None) -> str | None:
    """``application/JSON; charset=utf-8`` -> ``application/json``; NDJSON aliases folded."""
    if not content_type:
        return None
    base = content_type.split(";", 1)[0].strip().lower()
    if base == JSON or (base.startswith("application/") and base.endswith("+json")):
        return JSON
    if base in _NDJSON_ALIASES:
        return NDJSON
    return base


def require_media(content_type: str | None, *, ndjson: bool) -> str:
    """The body's media type, or 415 naming what the endpoint takes."""
    media = media_type(content_type)
    if media == JSON or (ndjson and media == NDJSON):
        return media
    accepted = f"{JSON} or {NDJSON}" if ndjson else JSON
    raise UnsupportedMediaType(
        f"Content-Type {content_type or '(none)'!s} is not supported; send {accepted}",
        accepted=[JSON, NDJSON] if ndjson else [JSON],
    )


def parse_batch(body: bytes, media: str, max_events: int) -> list[RawItem]:
    """The items of a batch body: a JSON array, or NDJSON (one document per line; a bad
    line fails alone). 413 beyond ``max_events`` items."""
    if media == NDJSON:
        lines = [(n, line) for n, line in enumerate(body.split(b"\n"), start=1) if line.strip()]
        _check_count(len(lines), max_events)
        if not lines:
            raise MalformedBody("the request body has no events")
        items = []
        for number, line in lines:
            try:
                items.append(RawItem(orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                text = line.decode("utf-8", "replace")
                err = MalformedBody(f"line {number}: malformed JSON: {exc}")
                items.append(RawItem(None, text, err))
        return items
    doc = parse_json(body)
    if not isinstance(doc, list):
        raise MalformedBody(f"a batch is a JSON array of events, got {type(doc).__name__}")
    _check_count(len(doc), max_events)
    if not doc:
        raise MalformedBody("the batch is empty")
    return [RawItem(v) for v in doc]


def _check_count(n: int, max_events: int) -> None:
    if n > max_events:
        raise PayloadTooLarge(
            f"batch of {n} events exceeds the limit of {max_events} events per request",
            limit=max_events,
        )
