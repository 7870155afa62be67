"""Reading a request body within a size limit, and parsing it as JSON: the limit is
enforced while reading (before any parsing) and every JSON problem is a 400, never a 500
(orjson refuses nesting deeper than 1024 levels with an ordinary decode error). The
gateway and the registry routes read their bodies through here."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from sluicegate.errors import BadRequest, MalformedBody, PayloadTooLarge

__all__ = ["parse_json", "read_body"]


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
