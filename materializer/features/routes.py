"""The features HTTP API under /v1/features: the catalog, applying/deleting/rebuilding
definitions (with job progress), and online reads for one entity or a batch.

Management paths start with ``_`` (``/v1/features/_definitions``, ``/v1/features/_jobs``),
which no entity type can (entity types are snake_case starting with a letter).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from materializer.features._store import FeatureRead, FeatureStore
from materializer.features.definition import definition_from_dict
from registry import Principal
from registry.http import read_principal, require_principal
from sluicegate.envelope import iso_to_ms
from sluicegate.errors import BadRequest, Forbidden, ResourceNotFound, StoreUnavailable
from sluicegate.state import app_state

__all__ = ["router"]

router = APIRouter(prefix="/v1/features", tags=["features"])

Reader = Annotated[Principal | None, Depends(read_principal)]
Writer = Annotated[Principal, Depends(require_principal)]
MAX_KEYS = 10_000


def _store(request: Request) -> FeatureStore:
    store = app_state(request).features
    if store is None:
        raise StoreUnavailable("this process does not serve the store (see --role)")
    return store


Store = Annotated[FeatureStore, Depends(_store)]


class ApplyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definitions: list[dict[str, Any]] = Field(description="Feature definitions (as in YAML).")
    dry_run: bool = Field(False, description="Validate and plan only.")


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[str] = Field(description="Entity keys.", max_length=MAX_KEYS)
    names: list[str] | None = Field(None, description="Features (name or name@version).")
    at: str | None = Field(None, description="Read time (default now), within a day of now.")


def _names(names: str | None) -> list[str] | None:
    if not names:
        return None
    return [n.strip() for n in names.split(",") if n.strip()]


def _as_of(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@router.get("")
def catalog(
    store: Store,
    _: Reader,
    all_versions: bool = Query(False, description="Include older active versions."),
) -> dict[str, Any]:
    """Every feature: owner, description, source subject, version, freshness (the time of
    the newest event it has taken in), freshness lag (how long the newest loaded event of
    its source took from acceptance to the feature), and the subjects and fields it
    reads."""
    recs = [r for r in store.records() if r.status in ("active", "backfilling")]
    if not all_versions:
        newest: dict[str, Any] = {}
        for r in recs:
            if r.status == "active" and r.version >= getattr(newest.get(r.name), "version", 0):
                newest[r.name] = r
        recs = [r for r in recs if r.status == "backfilling" or newest.get(r.name) is r]
    return {"features": store.describe_all(recs)}


@router.post("/_definitions")
async def apply(body: ApplyBody, store: Store, principal: Writer) -> dict[str, Any]:
    """Validate definitions against their source subjects' latest schemas, create the new
    versions and start their backfill (``job`` reports its progress)."""
    defns = [definition_from_dict(d) for d in body.definitions]
    if not defns:
        raise BadRequest("definitions: give at least one definition")
    return await run_in_threadpool(
        store.apply, defns, team=principal.team, admin=principal.admin, dry_run=body.dry_run
    )


@router.get("/_definitions/{name}")
def show(name: str, store: Store, _: Reader) -> dict[str, Any]:
    """Every stored version of a feature (deleted and failed ones included)."""
    recs = [r for r in store.records() if r.name == name]
    if not recs:
        raise ResourceNotFound(f"feature {name!r} not found", feature=name)
    return {"name": name, "versions": store.describe_all(recs)}


@router.delete("/_definitions/{ref}")
async def delete(ref: str, store: Store, principal: Writer) -> dict[str, Any]:
    """Delete a version (``name@v``) or every version of a feature, with its tables."""
    deleted = await run_in_threadpool(store.delete, ref, team=principal.team, admin=principal.admin)
    return {"deleted": deleted}


@router.post("/_rebuild")
async def rebuild(
    store: Store, principal: Writer, names: list[str] | None = Body(None, embed=True)
) -> dict[str, Any]:
    """Rebuild feature tables from `events` (all active features, or ``names``)."""
    if not principal.admin:
        raise Forbidden("rebuild needs an admin token")
    job = await run_in_threadpool(store.rebuild, names)
    return {"job": job.view()}


@router.get("/_jobs/{job_id}")
def job(job_id: str, store: Store, _: Reader) -> dict[str, Any]:
    """Progress of a backfill or rebuild: done/total events, ETA, state."""
    found = store.jobs.get(job_id)
    if found is None:
        raise ResourceNotFound(f"job {job_id!r} not found", job=job_id)
    return found.view()


AT_RANGE_MS = 86_400_000


def _at(at: str | None) -> int | None:
    """The read time: now (None), or ``at`` (RFC 3339 or epoch ms) within a day of now, the
    span the per-event rows of window edges are kept for."""
    if at is None:
        return None
    now = int(time.time() * 1000)
    try:
        ms = int(at) if at.lstrip("-").isdigit() else iso_to_ms(at)
    except ValueError as exc:
        raise BadRequest(f"at: {at!r} is not an RFC 3339 time or epoch milliseconds") from exc
    if abs(ms - now) > AT_RANGE_MS:
        raise BadRequest("at: must be within a day of now (older values: use a training set)")
    return ms


def _read(
    store: FeatureStore, entity_type: str, keys: list[str], names: list[str] | None, at: str | None
) -> FeatureRead:
    return store.read(entity_type, keys, names, now_ms=_at(at))


@router.get("/{entity_type}/{key}")
def entity_features(
    entity_type: str,
    key: str,
    store: Store,
    _: Reader,
    names: str | None = Query(
        None, description="Comma-separated features (name or name@version); default: all."
    ),
    at: str | None = Query(
        None, description="Read time (RFC 3339 or epoch ms) within a day of now; default now."
    ),
) -> dict[str, Any]:
    """Every requested feature of one entity as of now, in one round trip."""
    values, versions, now = _read(store, entity_type, [key], _names(names), at)
    return {
        "entity_type": entity_type,
        "key": key,
        "as_of": _as_of(now),
        "features": values[key],
        "versions": versions,
    }


def _batch(
    store: FeatureStore, entity_type: str, keys: list[str], names: list[str] | None, at: str | None
) -> dict[str, Any]:
    if len(keys) > MAX_KEYS:
        raise BadRequest(f"keys: at most {MAX_KEYS} keys per request")
    unique = list(dict.fromkeys(keys))
    values, versions, now = _read(store, entity_type, unique, names, at)
    return {
        "entity_type": entity_type,
        "as_of": _as_of(now),
        "versions": versions,
        "results": [{"key": k, "features": values[k]} for k in keys],
    }


@router.post("/{entity_type}/batch")
def batch(entity_type: str, body: BatchBody, store: Store, _: Reader) -> dict[str, Any]:
    """The requested features of many entities (e.g. ranking candidates) in one query."""
    return _batch(store, entity_type, body.keys, body.names, body.at)


@router.get("/{entity_type}")
def batch_get(
    entity_type: str,
    store: Store,
    _: Reader,
    keys: str = Query(description="Comma-separated entity keys."),
    names: str | None = Query(None, description="Comma-separated features."),
    at: str | None = Query(None, description="Read time within a day of now."),
) -> dict[str, Any]:
    """The batch read as a GET: ``?keys=a,b,c&names=f1,f2``."""
    return _batch(store, entity_type, [k for k in keys.split(",") if k], _names(names), at)
