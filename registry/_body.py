"""Request helpers for the registry routes: bounded body reading, JSON parsing, query
booleans and version ids, and the Confluent media type."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request, Response

from sluicegate.body import parse_json, read_body
from sluicegate.errors import BadRequest, InvalidVersion
from sluicegate.state import app_state

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
_MAX_VERSION = 2**31 - 1


def respond(content: Any, status: int = 200) -> Response:
    """A JSON response in the Confluent media type."""
    return Response(orjson.dumps(content), status_code=status, media_type=MEDIA_TYPE)


def _limit(request: Request) -> int:
    return app_state(request).settings.max_body_bytes


async def read_json(request: Request) -> Any:
    """The request body as JSON, refusing bodies over ``max_body_bytes`` (413) and
    malformed JSON (400)."""
    return parse_json(await read_body(request, _limit(request)))


def query_bool(request: Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter, case-insensitive (clients send True/False/true/false)."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadRequest(f"query parameter {name}={value!r} is not a boolean (true or false)")


def version_id(value: str) -> int:
    """A version path segment: ``latest`` or -1 (latest), or 1..2^31-1; 42202 otherwise."""
    if value.lower() == "latest":
        return -1
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number == -1 or 1 <= number <= _MAX_VERSION:
        return number
    raise InvalidVersion(
        f"The specified version '{value}' is not a valid version id. Allowed values are "
        f'between [1, {_MAX_VERSION}] and the string "latest"'
    )


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``#/$defs/...`` references replaced by the definitions: inside
    an OpenAPI document those references would point at nothing."""
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return dict(inline(schema))


def openapi_body(model: type[Any]) -> dict[str, Any]:
    """The OpenAPI requestBody of a route that reads its body itself (see read_json)."""
    schema = _inlined(model.model_json_schema(by_alias=True))
    return {
        "requestBody": {
            "required": True,
            "content": {
                MEDIA_TYPE: {"schema": schema},
                "application/json": {"schema": schema},
            },
        }
    }
