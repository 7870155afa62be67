"""HTTP routes of the gateway: ingest, recent rejections, readiness and metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway._body import parse_batch, require_media
from gateway._repair import repair_router
from gateway._service import Gateway, Incoming, Outcome, batch_event_id
from registry.http import require_principal
from sluicegate.body import parse_json, read_body
from sluicegate.errors import (
    BadRequest,
    InvalidVersion,
    MalformedBody,
    SluicegateError,
    SubjectNotFound,
    Unavailable,
    Unprocessable,
)
from sluicegate.state import app_state

__all__ = ["router"]

router = APIRouter()

_JSON_BODY = {"application/json": {"schema": {"type": "object"}}}
# NDJSON bodies are described as the array of their lines' documents.
_BATCH_BODY = {
    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
    "application/x-ndjson": {"schema": {"type": "array", "items": {"type": "object"}}},
}
_MIXED_ITEM = {
    "type": "object",
    "required": ["subject", "event"],
    "properties": {
        "subject": {"type": "string"},
        "event": {"type": "object"},
        "version": {"type": "integer", "minimum": 1},
        "event_id": {"type": "string"},
    },
}
_MIXED_BODY = {
    "application/json": {"schema": {"type": "array", "items": _MIXED_ITEM}},
    "application/x-ndjson": {"schema": {"type": "array", "items": _MIXED_ITEM}},
}
# Query parameters are read from the request directly (the hot path skips FastAPI's
# parameter machinery) and declared here for the OpenAPI document.
_VERSION_PARAM = {
    "name": "version",
    "in": "query",
    "required": False,
    "description": "Pin a schema version (default: latest).",
    "schema": {"anyOf": [{"type": "integer", "minimum": 1}, {"const": "latest"}]},
}
_ATOMIC_PARAM = {
    "name": "atomic",
    "in": "query",
    "required": False,
    "description": "All or nothing: produce only if every event is valid.",
    "schema": {"type": "boolean", "default": False},
}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON"},
    401: {"description": "Missing or unknown token"},
    403: {"description": "The token may not produce to this subject"},
    404: {"description": "Unknown subject or version"},
    413: {"description": "Body or batch too large"},
    415: {"description": "Unsupported Content-Type"},
    422: {"description": "Invalid event(s), with every violation"},
    503: {"description": "Kafka unavailable; retry after Retry-After seconds"},
}


def _gateway(request: Request) -> Gateway:
    gw = app_state(request).gateway
    if gw is None:
        raise Unavailable("the gateway is not running in this process")
    return gw


def _version(text: str | None) -> int | None:
    if text is None or text == "latest":
        return None
    try:
        value = int(text)
    except ValueError:
        raise InvalidVersion(f"version {text!r} is not a positive integer or 'latest'") from None
    if value < 1:
        raise InvalidVersion(f"version {value} is not a positive integer or 'latest'")
    return value


def _atomic(text: str | None) -> bool:
    value = (text or "false").lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise Unprocessable(f"atomic={text!r}: expected true or false")


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= 200:
        raise BadRequest("Idempotency-Key must have 1 to 200 characters")
    return key


def _json(body: Any, status: int) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


class _Timer:
    """Request latency per endpoint and status, errors included: ``with _Timer(...) as t``
    records ``t.status`` (set by the route) or the status of the SluicegateError raised."""

    __slots__ = ("endpoint", "gw", "started", "status")

    def __init__(self, gw: Gateway, endpoint: str) -> None:
        self.gw, self.endpoint, self.started = gw, endpoint, time.perf_counter()
        self.status = 500

    def __enter__(self) -> _Timer:
        return self

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        if isinstance(exc, SluicegateError):
            self.status = exc.status
        elapsed = time.perf_counter() - self.started
        self.gw.metrics.request_seconds.labels(self.endpoint, str(self.status)).observe(elapsed)


def _batch_response(gw: Gateway, outcomes: list[Outcome]) -> Response:
    if any(o.status == 503 for o in outcomes):
        raise gw.unavailable(outcomes)
    accepted = sum(1 for o in outcomes if o.status == 202)
    status = 202 if accepted == len(outcomes) else 207
    body = {
        "accepted": accepted,
        "rejected": len(outcomes) - accepted,
        "results": [o.body for o in outcomes],
    }
    return _json(body, status)


@router.post(
    "/v1/events/{subject}",
    tags=["gateway"],
    status_code=202,
    summary="Post one event",
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {"required": True, "content": _JSON_BODY},
        "parameters": [_VERSION_PARAM],
    },
)
async def post_event(request: Request, subject: str) -> Response:
    """Validate one event against the subject's schema and produce it to ``sg.<subject>``.
    Answers 202 only after Kafka acknowledged the event."""
    gw = _gateway(request)
    with _Timer(gw, "single") as timer:
        principal = await require_principal(request)
        require_media(request.headers.get("content-type"), ndjson=False)
        event_id = _idempotency_key(request)
        pinned = _version(request.query_params.get("version"))
        body = await read_body(request, app_state(request).settings.max_body_bytes)
        target = gw.target(subject, pinned)
        gw.authorize(principal, subject, target)
        try:
            event = parse_json(body)
        except MalformedBody as exc:
            gw.record_malformed(subject, exc, body.decode("utf-8", "replace"), principal.team)
            raise
        item = Incoming(0, subject, pinned, event, event_id)
        (outcome,) = await gw.ingest([item], principal)
        if outcome.error is not None:
            raise outcome.error
        result = dict(outcome.body)
        del result["index"], result["status"]
        timer.status = 202
        return _json(result, 202)


@router.post(
    "/v1/events/{subject}/batch",
    tags=["gateway"],
    status_code=202,
    summary="Post a batch of events of one subject (JSON array or NDJSON)",
    responses={207: {"description": "Per-item results: some accepted, some not"}, **_ERRORS},
    openapi_extra={
        "requestBody": {"required": True, "content": _BATCH_BODY},
        "parameters": [_VERSION_PARAM, _ATOMIC_PARAM],
    },
)
async def post_batch(request: Request, subject: str) -> Response:
    """Validate and produce a batch. 202 when all were accepted, 207 with per-item results
    otherwise (or one error for the whole batch when ``atomic``)."""
    gw = _gateway(request)
    with _Timer(gw, "batch") as timer:
        principal = await require_principal(request)
        media = require_media(request.headers.get("content-type"), ndjson=True)
        key = _idempotency_key(request)
        pinned = _version(request.query_params.get("version"))
        atomic = _atomic(request.query_params.get("atomic"))
        settings = app_state(request).settings
        body = await read_body(request, settings.max_body_bytes)
        target = gw.target(subject, pinned)
        gw.authorize(principal, subject, target)
        try:
            raw = parse_batch(body, media, settings.max_batch_events)
        except MalformedBody as exc:
            gw.record_malformed(subject, exc, body.decode("utf-8", "replace"), principal.team)
            raise
        items = []
        for i, r in enumerate(raw):
            if r.error is not None:
                gw.record_malformed(subject, r.error, r.text or "", principal.team)
            items.append(
                Incoming(
                    i,
                    subject,
                    pinned,
                    r.value,
                    batch_event_id(key, i) if key else None,
                    r.text,
                    r.error,
                )
            )
        outcomes = await gw.ingest(items, principal, atomic=atomic)
        response = _batch_response(gw, outcomes)
        timer.status = response.status_code
        return response


def _mixed_item(index: int, value: Any, key: str | None) -> Incoming:
    if not isinstance(value, dict):
        err = MalformedBody(f"item {index}: expected an object with subject and event")
        return Incoming(index, "", None, None, error=err)
    subject, event = value.get("subject"), value.get("event")
    if not isinstance(subject, str) or not subject or "event" not in value:
        err = MalformedBody(f"item {index}: 'subject' (text) and 'event' are required")
        return Incoming(index, "", None, None, error=err)
    version = value.get("version")
    if version is not None and (
        not isinstance(version, int) or isinstance(version, bool) or version < 1
    ):
        bad = InvalidVersion(f"item {index}: version {version!r} is not a positive integer")
        return Incoming(index, subject, None, None, error=bad)
    event_id = value.get("event_id")
    if event_id is not None and (not isinstance(event_id, str) or not 0 < len(event_id) <= 200):
        err = MalformedBody(f"item {index}: event_id must be text of 1 to 200 characters")
        return Incoming(index, subject, None, None, error=err)
    if event_id is None and key:
        event_id = batch_event_id(key, index)
    return Incoming(index, subject, version, event, event_id)


@router.post(
    "/v1/events",
    tags=["gateway"],
    status_code=202,
    summary="Post a batch of events of several subjects",
    responses={207: {"description": "Per-item results: some accepted, some not"}, **_ERRORS},
    openapi_extra={
        "requestBody": {"required": True, "content": _MIXED_BODY},
        "parameters": [_ATOMIC_PARAM],
    },
)
async def post_mixed(request: Request) -> Response:
    """Items ``{"subject", "event", "version"?, "event_id"?}``; per-item results as for
    ``/v1/events/{subject}/batch`` (an unknown or forbidden subject fails its items only)."""
    gw = _gateway(request)
    with _Timer(gw, "mixed") as timer:
        principal = await require_principal(request)
        media = require_media(request.headers.get("content-type"), ndjson=True)
        key = _idempotency_key(request)
        atomic = _atomic(request.query_params.get("atomic"))
        settings = app_state(request).settings
        body = await read_body(request, settings.max_body_bytes)
        raw = parse_batch(body, media, settings.max_batch_events)
        items = [
            Incoming(i, "", None, None, text=r.text, error=r.error)
            if r.error is not None
            else _mixed_item(i, r.value, key)
            for i, r in enumerate(raw)
        ]
        outcomes = await gw.ingest(items, principal, atomic=atomic)
        response = _batch_response(gw, outcomes)
        timer.status = response.status_code
        return response


@router.get("/readyz", tags=["operations"], responses={503: {"description": "Not ready"}})
async def readyz(request: Request) -> Response:
    """Readiness: Kafka answers a metadata request and acknowledged the last produce (a
    broker that answers but cannot take records is failing), and the registry database
    answers."""
    gw = _gateway(request)
    kafka_ok, registry_ok = await asyncio.gather(
        asyncio.to_thread(gw.sink.ping, 3.0), asyncio.to_thread(_registry_ok, gw)
    )
    failing = gw.sink.failing()
    checks = {
        "kafka": ("ok" if failing is None else f"failing: {failing}")
        if kafka_ok
        else "unreachable",
        "registry": "ok" if registry_ok else "unreachable",
    }
    kafka_ok = kafka_ok and failing is None
    if not (kafka_ok and registry_ok):
        raise Unavailable("not ready", retry_after=5, checks=checks)
    return _json({"status": "ready", "checks": checks}, 200)


def _registry_ok(gw: Gateway) -> bool:
    """Whether the registry database answers: looking up a name no subject can have makes
    the registry query its database."""
    try:
        gw.registry.metadata("__readyz__")
    except SubjectNotFound:
        return True
    except Exception:  # any other failure of the database means not ready
        return False
    return True


@router.get("/metrics", tags=["operations"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: the app's own registry plus the process defaults."""
    text = generate_latest(app_state(request).metrics) + generate_latest(REGISTRY)
    return Response(text, media_type=CONTENT_TYPE_LATEST)


router.include_router(repair_router)
