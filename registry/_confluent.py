"""The Confluent-compatible registry routes at their usual root paths."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from registry import _requests
from registry._body import MEDIA_TYPE, openapi_body, query_bool, read_json, respond, version_id
from registry._deps import Reader, Reg, Writer, get_registry, id_body, register_version
from registry._model import compatibility_of
from registry._registry import Registry
from registry._schemas import schema_type_of
from registry._types import Compatibility, Principal, RegisteredSchema
from sluicegate.errors import (
    Forbidden,
    ResourceNotFound,
    SubjectConfigNotFound,
    Unprocessable,
)
from sluicegate.state import app_state

confluent_router = APIRouter(tags=["schema registry (Confluent-compatible)"])


def _schema_body(rs: RegisteredSchema) -> dict[str, Any]:
    return {
        "subject": rs.subject,
        "version": rs.version,
        "id": rs.id,
        "schemaType": rs.schema_type.value,
        "schema": rs.schema,
    }


# ------------------------------------------------------------------ schemas
@confluent_router.get("/schemas/types")
async def schema_types(_: Reader) -> Response:
    """The schema formats this registry accepts."""
    return respond(["JSON", "AVRO"])


@confluent_router.get("/schemas/ids/{schema_id}")
async def schema_by_id(schema_id: int, request: Request, _: Reader) -> Response:
    """The schema with this global id (``subject`` and ``format`` are accepted and ignored:
    an id always names one schema)."""
    return Response(id_body(get_registry(request), schema_id), media_type=MEDIA_TYPE)


@confluent_router.get("/schemas/ids/{schema_id}/schema")
async def schema_text_by_id(schema_id: int, registry: Reg, _: Reader) -> Response:
    """The schema document itself."""
    return Response(registry.schema_by_id(schema_id).schema, media_type=MEDIA_TYPE)


@confluent_router.get("/schemas/ids/{schema_id}/versions")
async def versions_of_id(schema_id: int, request: Request, registry: Reg, _: Reader) -> Response:
    """Every subject-version using this schema."""
    deleted = query_bool(request, "deleted")
    pairs = registry.subject_versions_of_id(schema_id, deleted=deleted)
    return respond([{"subject": s, "version": v} for s, v in pairs])


@confluent_router.get("/schemas/ids/{schema_id}/subjects")
async def subjects_of_id(schema_id: int, request: Request, registry: Reg, _: Reader) -> Response:
    """Every subject using this schema."""
    deleted = query_bool(request, "deleted")
    pairs = registry.subject_versions_of_id(schema_id, deleted=deleted)
    return respond(sorted({s for s, _v in pairs}))


@confluent_router.get("/schemas")
async def list_schemas(request: Request, registry: Reg, _: Reader) -> Response:
    """Schemas of every subject (``subjectPrefix``, ``deleted``, ``latestOnly``)."""
    deleted = query_bool(request, "deleted")
    latest_only = query_bool(request, "latestOnly")
    prefix = request.query_params.get("subjectPrefix", "")
    out: list[dict[str, Any]] = []
    for subject in registry.subjects(deleted=deleted, prefix=prefix):
        numbers = registry.versions(subject, deleted=deleted)
        out.extend(
            _schema_body(registry.version(subject, n, deleted=deleted))
            for n in (numbers[-1:] if latest_only else numbers)
        )
    return respond(out)


# ------------------------------------------------------------------ subjects
@confluent_router.get("/subjects")
async def list_subjects(request: Request, registry: Reg, _: Reader) -> Response:
    """Subject names (``deleted=true`` includes soft-deleted ones)."""
    deleted = query_bool(request, "deleted")
    prefix = request.query_params.get("subjectPrefix", "")
    return respond(registry.subjects(deleted=deleted, prefix=prefix))


@confluent_router.get("/subjects/{subject}/versions")
async def list_versions(subject: str, request: Request, registry: Reg, _: Reader) -> Response:
    """Version numbers of a subject."""
    return respond(registry.versions(subject, deleted=query_bool(request, "deleted")))


@confluent_router.get("/subjects/{subject}/versions/{version}")
async def get_version(
    subject: str, version: str, request: Request, registry: Reg, _: Reader
) -> Response:
    """One version (``latest`` for the newest)."""
    number = version_id(version)
    rs = registry.version(subject, number, deleted=query_bool(request, "deleted"))
    return respond(_schema_body(rs))


@confluent_router.get("/subjects/{subject}/versions/{version}/schema")
async def get_version_schema(
    subject: str, version: str, request: Request, registry: Reg, _: Reader
) -> Response:
    """The schema document of one version."""
    rs = registry.version(subject, version_id(version), deleted=query_bool(request, "deleted"))
    return Response(rs.schema, media_type=MEDIA_TYPE)


@confluent_router.get("/subjects/{subject}/versions/{version}/referencedby")
async def referenced_by(subject: str, version: str, registry: Reg, _: Reader) -> Response:
    """Schema references are not supported, so nothing refers to a version."""
    registry.version(subject, version_id(version))
    return respond([])


@confluent_router.post(
    "/subjects/{subject}/versions",
    openapi_extra=openapi_body(_requests.RegisterBody),
)
async def register(subject: str, request: Request, registry: Reg, principal: Writer) -> Response:
    """Register a schema under a subject; returns its global id. Accepts Confluent's
    ``metadata.properties`` (owner, entity_key, event_time, description, tags) and
    ``ruleSet.migrationRules`` (type SLUICEGATE), or Sluicegate's ``migration`` list."""
    body = _requests.parse_register(await read_json(request))
    req = _requests.to_registration(body, subject, registry)
    result = await register_version(request, registry, subject, req, principal)
    out: dict[str, Any] = {"id": result.id, "version": result.version}
    if result.migrated:
        out["migrated"] = True
        out["messages"] = result.messages
    return respond(out)


@confluent_router.post(
    "/subjects/{subject}",
    openapi_extra=openapi_body(_requests.RegisterBody),
)
async def lookup(subject: str, request: Request, registry: Reg, _: Reader) -> Response:
    """Find the version of a subject whose schema equals the one posted (40403 if none)."""
    body = _requests.parse_register(await read_json(request))
    schema_type = schema_type_of(body.schemaType)
    rs = registry.lookup(
        subject, body.schema_text, schema_type, deleted=query_bool(request, "deleted")
    )
    return respond(_schema_body(rs))


@confluent_router.delete("/subjects/{subject}")
async def delete_subject(
    subject: str, request: Request, registry: Reg, principal: Writer
) -> Response:
    """Soft-delete a subject, or with ``permanent=true`` remove a soft-deleted one."""
    permanent = query_bool(request, "permanent")
    return respond(
        await run_in_threadpool(
            registry.delete_subject,
            subject,
            permanent=permanent,
            principal=principal,
        )
    )


@confluent_router.delete("/subjects/{subject}/versions/{version}")
async def delete_version(
    subject: str, version: str, request: Request, registry: Reg, principal: Writer
) -> Response:
    """Soft-delete a version, or with ``permanent=true`` remove a soft-deleted one."""
    number = version_id(version)
    permanent = query_bool(request, "permanent")
    return respond(
        await run_in_threadpool(
            registry.delete_version,
            subject,
            number,
            permanent=permanent,
            principal=principal,
        )
    )


# ------------------------------------------------------------------ compatibility
async def _test(
    subject: str,
    version: int | None,
    request: Request,
    registry: Registry,
    principal: Principal | None,
) -> Response:
    body = _requests.parse_register(await read_json(request))
    schema_type = schema_type_of(body.schemaType)
    messages = await run_in_threadpool(
        registry.test_compatibility,
        subject,
        body.schema_text,
        schema_type,
        version=version,
    )
    out: dict[str, Any] = {"is_compatible": not messages}
    verbose = query_bool(request, "verbose")
    if messages or verbose:
        out["messages"] = messages
    changes = app_state(request).changes
    if verbose and changes is not None and version is None and principal is not None:
        # Sluicegate's additions: the candidate against the stored events and the features
        # (the subject's owner team only; Confluent clients ignore the extra fields)
        req = _requests.to_registration(body, subject, registry)
        if subject in registry.subjects() and principal.can_manage(
            registry.metadata(subject).owner
        ):
            candidate = await run_in_threadpool(
                registry.candidate, subject, req.schema, req.schema_type, migration=req.migration
            )
            found = await run_in_threadpool(changes.check, candidate, principal=principal, log=True)
            out.update(found)
            if found["log"]["summary"]:
                out["messages"] = [*messages, "stored events: " + found["log"]["summary"]]
    return respond(out)


@confluent_router.post(
    "/compatibility/subjects/{subject}/versions/{version}",
    openapi_extra=openapi_body(_requests.RegisterBody),
)
async def check_compatibility_version(
    subject: str, version: str, request: Request, registry: Reg, principal: Reader
) -> Response:
    """Would this schema be compatible with the given version (``latest``: with the
    versions the subject's level checks)? Failures list each field path and rule. With
    ``verbose=true`` against ``latest``, the subject's owner team also gets the check
    against its stored events and the features it would affect (``log``, ``impact``)."""
    number = version_id(version)
    return await _test(subject, None if number == -1 else number, request, registry, principal)


@confluent_router.post(
    "/compatibility/subjects/{subject}/versions",
    openapi_extra=openapi_body(_requests.RegisterBody),
)
async def check_compatibility_all(
    subject: str, request: Request, registry: Reg, principal: Reader
) -> Response:
    """Would this schema be compatible with the subject's versions, as its level says?
    (``verbose=true``: as for ``.../versions/latest``.)"""
    return await _test(subject, None, request, registry, principal)


# ------------------------------------------------------------------ config and mode
def _level_from(body: Any) -> Compatibility:
    if not isinstance(body, dict):
        raise Unprocessable('body must be a JSON object like {"compatibility": "BACKWARD"}')
    value = body.get("compatibility", body.get("compatibilityLevel"))
    if value is None:
        raise Unprocessable("body.compatibility: required")
    return compatibility_of(value)


@confluent_router.get("/config")
async def get_global_config(registry: Reg, _: Reader) -> Response:
    """The global compatibility level."""
    return respond({"compatibilityLevel": registry.global_compatibility().value})


@confluent_router.put("/config")
async def put_global_config(request: Request, registry: Reg, principal: Writer) -> Response:
    """Change the global compatibility level (admins only)."""
    level = _level_from(await read_json(request))
    await run_in_threadpool(registry.set_global_compatibility, level, principal=principal)
    return respond({"compatibility": level.value})


@confluent_router.get("/config/{subject}")
async def get_subject_config(subject: str, request: Request, registry: Reg, _: Reader) -> Response:
    """A subject's own level (40408 when it has none, unless ``defaultToGlobal=true``)."""
    level = registry.subject_compatibility(subject)
    if level is None:
        if query_bool(request, "defaultToGlobal"):
            level = registry.global_compatibility()
        else:
            raise SubjectConfigNotFound(
                f"Subject '{subject}' does not have subject-level compatibility configured"
            )
    return respond({"compatibilityLevel": level.value})


@confluent_router.put("/config/{subject}")
async def put_subject_config(
    subject: str, request: Request, registry: Reg, principal: Writer
) -> Response:
    """Set a subject's own level (its owner or an admin)."""
    level = _level_from(await read_json(request))
    await run_in_threadpool(registry.set_subject_compatibility, subject, level, principal=principal)
    return respond({"compatibility": level.value})


@confluent_router.delete("/config/{subject}")
async def delete_subject_config(subject: str, registry: Reg, principal: Writer) -> Response:
    """Remove a subject's own level (it follows the global one again)."""
    if registry.subject_compatibility(subject) is None:
        raise SubjectConfigNotFound(
            f"Subject '{subject}' does not have subject-level compatibility configured"
        )
    previous = await run_in_threadpool(
        registry.set_subject_compatibility,
        subject,
        None,
        principal=principal,
    )
    return respond({"compatibilityLevel": previous.value if previous else None})


def _mode_from(body: Any) -> str:
    mode = body.get("mode") if isinstance(body, dict) else None
    if not isinstance(mode, str) or mode.upper() != "READWRITE":
        raise Unprocessable(f"invalid mode {mode!r}: this registry supports READWRITE only")
    return "READWRITE"


@confluent_router.get("/mode")
async def get_mode(_: Reader) -> Response:
    """The registry is always READWRITE."""
    return respond({"mode": "READWRITE"})


@confluent_router.put("/mode")
async def put_mode(request: Request, principal: Writer) -> Response:
    """Only READWRITE is supported."""
    if not principal.admin:
        raise Forbidden("only an admin changes the mode")
    return respond({"mode": _mode_from(await read_json(request))})


@confluent_router.get("/mode/{subject}")
async def get_subject_mode(subject: str, _: Reader) -> Response:
    """Every subject is READWRITE."""
    return respond({"mode": "READWRITE"})


@confluent_router.put("/mode/{subject}")
async def put_subject_mode(subject: str, request: Request, _: Writer) -> Response:
    """Only READWRITE is supported."""
    return respond({"mode": _mode_from(await read_json(request))})


@confluent_router.api_route(
    "/associations/{rest:path}",
    methods=["GET", "POST", "PUT", "DELETE"],
    include_in_schema=False,
)
async def associations(rest: str) -> Response:
    """Associations are not supported: clients fall back to the topic-name strategy."""
    raise ResourceNotFound(f"association '{rest}' not found")
