"""Sluicegate's own registry routes under /v1: listing, metadata, migrations, upcasting
and tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from registry import _requests
from registry._body import openapi_body, query_bool, read_json, respond, version_id
from registry._deps import Reader, Reg, Writer, register_version
from sluicegate.errors import Forbidden
from sluicegate.state import app_state

v1_router = APIRouter(prefix="/v1", tags=["registry"])


# ------------------------------------------------------------------ /v1
@v1_router.get("/subjects")
async def v1_subjects(request: Request, registry: Reg, _: Reader) -> Response:
    """Subjects with their owner, latest version, level and metadata (``owner``, ``prefix``
    and ``deleted`` filter)."""
    owner = request.query_params.get("owner")
    prefix = request.query_params.get("prefix", "")
    deleted = query_bool(request, "deleted")
    out = []
    for subject in registry.subjects(deleted=deleted, prefix=prefix):
        item = _requests.subject_summary(registry, subject, deleted=deleted)
        if owner is None or item["owner"] == owner:
            out.append(item)
    return respond(out)


@v1_router.get("/subjects/{subject}")
async def v1_subject(subject: str, request: Request, registry: Reg, _: Reader) -> Response:
    """One subject's summary."""
    deleted = query_bool(request, "deleted")
    if subject not in registry.subjects(deleted=deleted):
        registry.latest(subject, deleted=deleted)  # raises SubjectNotFound
    return respond(_requests.subject_summary(registry, subject, deleted=deleted))


@v1_router.get("/subjects/{subject}/metadata")
async def v1_get_metadata(subject: str, registry: Reg, _: Reader) -> Response:
    """Owner, entity key fields, event-time field, description and tags."""
    return respond(_requests.metadata_body(registry.metadata(subject)))


@v1_router.put(
    "/subjects/{subject}/metadata",
    openapi_extra=openapi_body(_requests.MetadataBody),
)
async def v1_put_metadata(
    subject: str, request: Request, registry: Reg, principal: Writer
) -> Response:
    """Replace a subject's metadata (its owner or an admin). Fields left out keep their
    current values."""
    meta = _requests.parse_metadata(await read_json(request), registry.metadata(subject))
    saved = await run_in_threadpool(registry.set_metadata, meta, principal=principal)
    return respond(_requests.metadata_body(saved))


@v1_router.post(
    "/subjects/{subject}/versions",
    openapi_extra=openapi_body(_requests.V1RegisterBody),
)
async def v1_register(subject: str, request: Request, registry: Reg, principal: Writer) -> Response:
    """Register a version with an optional migration from the previous version and
    metadata; the answer says whether it was new and whether the migration was needed."""
    req = _requests.parse_v1_register(await read_json(request), subject, registry)
    result = await register_version(request, registry, subject, req, principal)
    return respond(
        {
            "id": result.id,
            "version": result.version,
            "created": result.created,
            "migrated": result.migrated,
            "messages": result.messages,
        },
        status=201 if result.created else 200,
    )


@v1_router.post(
    "/subjects/{subject}/check",
    openapi_extra=openapi_body(_requests.V1RegisterBody),
)
async def v1_check(
    subject: str,
    request: Request,
    registry: Reg,
    principal: Reader,
    log: bool = Query(
        True,
        description="Also check the candidate against the subject's stored events (owner "
        "team or admin only).",
    ),
    sample: int = Query(
        1000,
        ge=0,
        le=100_000,
        description="Stored events validated in full, every rule of the schema (0: none).",
    ),
) -> Response:
    """Check a candidate version (the body of a registration) before registering it:
    whether it would be accepted, how every stored event reads as it (``log``), which
    features read a field it removes, renames, retypes or migrates, and which ones it
    breaks (``impact``). Nothing is registered. See docs/registry.md."""
    req = _requests.parse_v1_register(await read_json(request), subject, registry)
    candidate = await run_in_threadpool(
        registry.candidate, subject, req.schema, req.schema_type, migration=req.migration
    )
    out: dict[str, Any] = {
        "subject": subject,
        "version": candidate.version,
        "is_compatible": candidate.accepted,
        "messages": candidate.messages,
    }
    changes = app_state(request).changes
    if changes is None:
        out["log"] = out["impact"] = None  # this process runs no store (role registry)
    else:
        out.update(
            await run_in_threadpool(
                changes.check, candidate, principal=principal, sample=sample, log=log
            )
        )
    return respond(out)


@v1_router.get("/subjects/{subject}/migrations")
async def v1_migrations(subject: str, registry: Reg, _: Reader) -> Response:
    """The migration each version carries from the version before it (null: none)."""
    numbers = registry.versions(subject, deleted=True)
    return respond([{"version": n, "migration": registry.migration(subject, n)} for n in numbers])


@v1_router.get("/subjects/{subject}/versions/{version}/migration")
async def v1_migration(subject: str, version: str, registry: Reg, _: Reader) -> Response:
    """The migration one version carries from the version before it."""
    number = version_id(version)
    if number == -1:
        number = registry.latest(subject).version
    return respond({"version": number, "migration": registry.migration(subject, number)})


@v1_router.post(
    "/subjects/{subject}/upcast",
    openapi_extra=openapi_body(_requests.UpcastBody),
)
async def v1_upcast(subject: str, request: Request, registry: Reg, _: Reader) -> Response:
    """Bring an event of an older version to the latest one through the migration chain."""
    body = _requests.parse_upcast(await read_json(request))
    version, payload = registry.upcast(subject, body.version, body.payload)
    return respond({"version": version, "payload": payload})


@v1_router.post(
    "/tokens",
    openapi_extra=openapi_body(_requests.TokenBody),
)
async def v1_create_token(request: Request, registry: Reg, principal: Writer) -> Response:
    """Create a token for a team (admins only). The token is shown once."""
    if not principal.admin:
        raise Forbidden("only an admin creates tokens")
    body = _requests.parse_token(await read_json(request))
    token = await run_in_threadpool(
        registry.create_token,
        body.team,
        subjects=body.subjects,
        admin=body.admin,
    )
    return respond(
        {"token": token, "team": body.team, "subjects": body.subjects, "admin": body.admin},
        status=201,
    )
