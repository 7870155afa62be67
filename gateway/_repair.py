"""Repairing refused records in one call: a gateway rejection or a dead-lettered record is
validated again and produced to its governed topic with its original event id and event
time, then marked replayed so that it never is again (docs/gateway.md, "Repair").

The replay record lives in the store (``replays``), so these routes need a process that
runs both the gateway and the store (``--role all``, the default). A crash between the
produce and the mark leaves the record unmarked; replaying it again produces the same
event id, which the log's first-write-wins keeps once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from gateway._service import Gateway, Incoming, Outcome
from registry import Principal
from registry.http import require_principal
from sluicegate.body import parse_json, read_body
from sluicegate.envelope import H_ID, iso_to_ms
from sluicegate.errors import (
    AlreadyReplayed,
    EventRejected,
    Forbidden,
    NotFound,
    ResourceNotFound,
    StoreUnavailable,
    Unavailable,
    Unprocessable,
)
from sluicegate.naming import subject_for_topic
from sluicegate.state import app_state

if TYPE_CHECKING:
    from materializer.loader import ReplayLog

__all__ = ["merged_rejections", "repair_router", "replay_dead_letter", "replay_rejection"]

repair_router = APIRouter(tags=["gateway"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or unknown token"},
    403: {"description": "Not the owner team of the subject (or an admin)"},
    404: {"description": "Unknown subject, rejection or dead letter"},
    409: {"description": "Replayed before"},
    422: {"description": "Still invalid: every violation"},
    503: {"description": "Kafka or ClickHouse unavailable"},
}
_CORRECTED = {
    "content": {"application/json": {"schema": {"type": "object"}}},
    "required": False,
    "description": "The corrected event (default: the rejected event as it was sent).",
}


def _json(body: Any, status: int) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _services(request: Request) -> tuple[Gateway, ReplayLog]:
    state = app_state(request)
    if state.gateway is None or state.replays is None:
        raise StoreUnavailable(
            "replays need the gateway and the store in one process (sluicegate serve --role all)"
        )
    return state.gateway, state.replays


def _owner_of(gw: Gateway, subject: str) -> str | None:
    try:
        return gw.registry.metadata(subject).owner
    except NotFound:
        return None


def _require_owner(principal: Principal, gw: Gateway, subject: str, doing: str) -> None:
    if not principal.can_manage(_owner_of(gw, subject)):
        raise Forbidden(f"only the owner team of {subject!r} (or an admin) may {doing}")


def merged_rejections(
    ring: list[dict[str, Any]], stored: list[dict[str, Any]], limit: int
) -> list[Any]:
    """This process's recent rejections and the store's, once each, newest first."""
    seen = {r["id"] for r in stored}
    fresh = [{**r, "replayed": None} for r in ring if r.get("id") not in seen]
    rows = sorted(fresh + stored, key=lambda r: (r["received_at"], r["id"]), reverse=True)
    return rows[:limit]


@repair_router.get("/v1/rejections/{subject}", responses=_ERRORS)
async def rejections(
    request: Request,
    subject: str,
    limit: int = Query(100, ge=1, le=1000, description="Most rejections returned, newest first."),
) -> Response:
    """Rejected events of a subject with their violations, id and replay (owner team or
    admin): the ones this process refused lately and every one the store holds."""
    principal = await require_principal(request)
    state = app_state(request)
    gw = state.gateway
    if gw is None:
        raise Unavailable("the gateway is not running in this process")
    gw.target(subject, None)  # 404 for an unknown subject
    _require_owner(principal, gw, subject, "read its rejections")
    ring = gw.rejections.recent(subject, limit)
    stored = (
        await run_in_threadpool(state.replays.rejections, subject, limit)
        if state.replays is not None
        else []
    )
    return _json({"subject": subject, "rejections": merged_rejections(ring, stored, limit)}, 200)


# One replay of an item at a time in this process, from its check to its mark.
_LOCKS: dict[tuple[str, str], asyncio.Lock] = {}


def _lock(kind: str, item_id: str) -> asyncio.Lock:
    if len(_LOCKS) > 10_000:
        for key in [k for k, v in _LOCKS.items() if not v.locked()]:
            del _LOCKS[key]
    return _LOCKS.setdefault((kind, item_id), asyncio.Lock())


def _refused(outcome: Outcome) -> None:
    err = outcome.error
    if isinstance(err, EventRejected):
        raise EventRejected(f"still invalid: {err.message}", **err.details)
    if err is not None:
        raise err
    raise Unavailable(f"the replay was not produced: {outcome.body}")


@repair_router.post(
    "/v1/rejections/{subject}/{rejection_id}/replay",
    status_code=202,
    responses=_ERRORS,
    openapi_extra={"requestBody": _CORRECTED},
)
async def post_replay_rejection(
    request: Request,
    subject: str,
    rejection_id: str,
    version: int | None = Query(None, ge=1, description="Validate against this version."),
) -> Response:
    """Validate a rejected event again — as it was sent, or the corrected event in the
    body — and produce it with its original event id and event time (owner team or
    admin). Each rejection is replayed at most once (409 after)."""
    principal = await require_principal(request)
    gw, replays = _services(request)
    body = await read_body(request, app_state(request).settings.max_body_bytes)
    answer = await replay_rejection(gw, replays, principal, subject, rejection_id, body, version)
    return _json(answer, 202)


async def replay_rejection(
    gw: Gateway,
    replays: ReplayLog,
    principal: Principal,
    subject: str,
    rejection_id: str,
    body: bytes = b"",
    version: int | None = None,
) -> dict[str, Any]:
    """Replay one rejection (``body``: the corrected event, or empty for the event as it
    was sent); the answer of ``POST /v1/rejections/{subject}/{id}/replay``."""
    gw.target(subject, version)
    _require_owner(principal, gw, subject, "replay its rejections")
    async with _lock("rejection", rejection_id):
        done = await run_in_threadpool(replays.replayed, "rejection", rejection_id)
        if done is not None:
            raise AlreadyReplayed(f"rejection {rejection_id} was replayed before", replayed=done)
        rejection = await run_in_threadpool(
            replays.rejection, subject, rejection_id
        ) or gw.rejections.find(subject, rejection_id)
        if rejection is None:
            raise ResourceNotFound(f"no rejection {rejection_id!r} of subject {subject!r}")
        corrected = bool(body.strip())
        event = parse_json(body) if corrected else _original(rejection)
        item = Incoming(
            0,
            subject,
            version,
            event,
            event_id=rejection.get("event_id") or rejection["id"],
            occurred_at=iso_to_ms(rejection["received_at"]),
            record_rejection=False,
        )
        # as sent, the event is still the original producer's; corrected, it is the
        # replaying team's (a team never produces in another team's name)
        producer = principal.team if corrected else rejection.get("producer") or principal.team
        outcome = await gw.replay(item, producer=producer)
        if outcome.status != 202:
            _refused(outcome)
        mark = await run_in_threadpool(
            lambda: replays.mark(
                "rejection",
                rejection_id,
                subject=subject,
                event_id=outcome.body["event_id"],
                team=principal.team,
                topic=outcome.body["topic"],
                partition=outcome.body["partition"],
                offset=outcome.body["offset"],
            )
        )
    return {**outcome.body, "rejection_id": rejection_id, "replayed": mark}


def _original(rejection: dict[str, Any]) -> Any:
    if rejection.get("event_truncated"):
        raise Unprocessable(
            "the rejected event was too large to keep whole; send the corrected event as "
            "the request body"
        )
    try:
        return orjson.loads(rejection["event"])
    except orjson.JSONDecodeError:
        raise Unprocessable(
            "the rejected text is not JSON; send the corrected event as the request body"
        ) from None


def _dead_letter_place(dead_letter_id: str) -> tuple[str, int, int]:
    topic, _, rest = dead_letter_id.partition(":")
    partition, _, offset = rest.partition(":")
    if not (topic and partition.isdigit() and offset.isdigit()):
        raise ResourceNotFound(
            f"dead letter id {dead_letter_id!r}: expected <topic>:<partition>:<offset>"
        )
    return topic, int(partition), int(offset)


@repair_router.get("/v1/dead-letters", responses=_ERRORS)
async def dead_letters(
    request: Request,
    subject: str | None = Query(None, description="Only this subject's governed topic."),
    limit: int = Query(100, ge=1, le=1000, description="Most dead letters, newest first."),
) -> Response:
    """Records the materializer could not load, newest first, with their id, error and
    replay: a subject's for its owner team, every subject's for an admin."""
    principal = await require_principal(request)
    gw, replays = _services(request)
    if subject is None:
        if not principal.admin:
            raise Forbidden("only an admin may list every subject's dead letters; give subject=")
        topic = None
    else:
        gw.target(subject, None)
        _require_owner(principal, gw, subject, "read its dead letters")
        topic = f"sg.{subject}"
    rows = await run_in_threadpool(replays.dead_letters, topic, limit)
    return _json({"subject": subject, "dead_letters": rows}, 200)


@repair_router.post("/v1/dead-letters/{dead_letter_id}/replay", status_code=202, responses=_ERRORS)
async def post_replay_dead_letter(request: Request, dead_letter_id: str) -> Response:
    """Produce a dead-lettered record again, exactly as it was (key, value, headers: its
    event id and time), once the schema or migration that refused it was fixed; refused
    (422, nothing produced) while it still cannot be loaded. At most once (409 after)."""
    principal = await require_principal(request)
    gw, replays = _services(request)
    return _json(await replay_dead_letter(gw, replays, principal, dead_letter_id), 202)


async def replay_dead_letter(
    gw: Gateway, replays: ReplayLog, principal: Principal, dead_letter_id: str
) -> dict[str, Any]:
    """Replay one dead letter; the answer of ``POST /v1/dead-letters/{id}/replay``."""
    topic, partition, offset = _dead_letter_place(dead_letter_id)
    try:
        subject = subject_for_topic(topic)
    except ValueError:
        raise ResourceNotFound(f"{topic!r} is not a governed topic") from None
    _require_owner(principal, gw, subject, "replay its dead letters")
    async with _lock("dead_letter", dead_letter_id):
        done = await run_in_threadpool(replays.replayed, "dead_letter", dead_letter_id)
        if done is not None:
            raise AlreadyReplayed(
                f"dead letter {dead_letter_id} was replayed before", replayed=done
            )
        row = await run_in_threadpool(replays.dead_letter, topic, partition, offset)
        if row is None:
            raise ResourceNotFound(f"no dead letter {dead_letter_id!r}")
        if not row.headers:
            raise Unprocessable(
                f"dead letter {dead_letter_id} was stored without its headers (before "
                "they were kept); produce it again from the source"
            )
        error = await run_in_threadpool(replays.load_error, row)
        if error is not None:
            raise Unprocessable(
                f"dead letter {dead_letter_id} still cannot be loaded: {error}; fix the "
                "schema or the migration first",
                error=error,
            )
        delivery = await gw.produce_record(topic, row.key, row.value, row.headers)
        if not delivery.ok:
            raise Unavailable(
                f"Kafka did not acknowledge the record ({delivery.error}); retry",
                retry_after=2,
            )
        event_id = dict(row.headers).get(H_ID, b"").decode(errors="replace")
        mark = await run_in_threadpool(
            lambda: replays.mark(
                "dead_letter",
                dead_letter_id,
                subject=subject,
                event_id=event_id,
                team=principal.team,
                topic=topic,
                partition=delivery.partition,
                offset=delivery.offset,
            )
        )
    return {
        "dead_letter_id": dead_letter_id,
        "event_id": event_id,
        "topic": topic,
        "partition": delivery.partition,
        "offset": delivery.offset,
        "replayed": mark,
    }
