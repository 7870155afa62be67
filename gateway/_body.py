"""Reading and parsing request bodies: the size limit is enforced while reading (before any
parsing), content types are checked, and every JSON problem becomes a 400, never a 500
(orjson refuses nesting deeper than 1024 levels with an ordinary decode error)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from sluicegate.errors import BadRequest, MalformedBody, PayloadTooLarge, UnsupportedMediaType

__all__ = [
    "JSON",
    "NDJSON",
    "RawItem",
    "media_type",
    "parse_batch",
    "parse_json",
    "read_body",
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


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest(f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            raise PayloadTooLarge(
                f"request body of {size} bytes exceeds the limit of {limit} bytes", limit=limit
            )
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """One JSON document, or 400 with the parser's reason."""
    if not body.strip():
        raise MalformedBody("the request body is empty; send a JSON document")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"malformed JSON: {exc}") from exc


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
