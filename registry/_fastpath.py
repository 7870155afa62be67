"""The schema-by-id fast path: deserializers' lookups answered before routing."""

from __future__ import annotations

from typing import Any

from registry._body import MEDIA_TYPE
from registry._deps import cached_principal, id_body
from registry._registry import Registry
from sluicegate.errors import SluicegateError

_IDS_PREFIX = "/schemas/ids/"
_FAST_HEADERS = [(b"content-type", MEDIA_TYPE.encode())]


class SchemaLookupFastPath:
    """ASGI middleware answering successful ``GET /schemas/ids/{id}`` lookups (the call
    every deserializer makes) straight from precomputed bytes, before routing. Anything
    else (other paths, unknown ids, bad credentials) goes on to the normal routes, which
    produce the same answers and every error."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if (
            scope.get("method") == "GET"
            and path.startswith(_IDS_PREFIX)
            and path[len(_IDS_PREFIX) :].isascii()
            and path[len(_IDS_PREFIX) :].isdigit()
        ):
            body = self._lookup(scope, int(path[len(_IDS_PREFIX) :]))
            if body is not None:
                headers = [*_FAST_HEADERS, (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _lookup(scope: Any, schema_id: int) -> bytes | None:
        registry: Registry | None = getattr(scope["app"].state, "registry", None)
        if registry is None:
            return None
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if header is None:
            if not registry.anonymous_read:
                return None
        elif cached_principal(registry, header.decode("latin-1")) is None:
            return None
        try:
            return id_body(registry, schema_id)
        except SluicegateError:
            return None
