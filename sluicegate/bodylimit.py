"""The request-body limit, enforced for every route before anything parses a body or
looks at a token: a declared ``Content-Length`` over the limit is answered 413 at once,
and a body without one is cut off with 413 as soon as it grows past the limit."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sluicegate.errors import BadRequest, PayloadTooLarge, SluicegateError

__all__ = ["BodyLimit"]


class BodyLimit:
    """ASGI middleware refusing request bodies larger than ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        try:
            if declared is not None and not declared.isdigit():
                raise BadRequest(f"Content-Length {declared!r} is not a number")
            if declared is not None and int(declared) > self.limit:
                raise PayloadTooLarge(
                    f"request body of {declared} bytes exceeds the limit of {self.limit} bytes",
                    limit=self.limit,
                )
        except SluicegateError as exc:
            await _respond(send, exc)
            return
        seen = 0
        refused = False

        async def limited() -> Message:
            # past the limit: answer 413 here, and tell the app the client went away
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    await _respond(
                        send,
                        PayloadTooLarge(
                            f"request body exceeds the limit of {self.limit} bytes",
                            limit=self.limit,
                        ),
                    )
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited, guarded)


def _content_length(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return str(value.decode("latin-1").strip())
    return None


async def _respond(send: Send, exc: SluicegateError) -> None:
    body = orjson.dumps(exc.body())
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"connection", b"close"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
