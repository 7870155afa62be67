"""Auth dependencies of the registry routes (and of other packages' routes)."""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from registry import _requests
from registry._body import query_bool
from registry._registry import Registry
from registry._types import Principal, RegisterResult
from sluicegate.errors import Unauthorized
from sluicegate.state import app_state

_AUTH_CACHE_SIZE = 4096


@dataclass
class _HttpCaches:
    """Per-registry answers worth keeping: accepted Authorization headers (tokens are
    never revoked, principals never change) and schema-by-id bodies (ids are immutable)."""

    principals: dict[str, Principal] = field(default_factory=dict)
    id_bodies: dict[int, bytes] = field(default_factory=dict)


_CACHES: weakref.WeakKeyDictionary[Registry, _HttpCaches] = weakref.WeakKeyDictionary()


def _caches(registry: Registry) -> _HttpCaches:
    caches = _CACHES.get(registry)
    if caches is None:
        caches = _CACHES.setdefault(registry, _HttpCaches())
    return caches


def get_registry(request: Request) -> Registry:
    """The app's Registry."""
    return app_state(request).registry


def cached_principal(registry: Registry, header: str) -> Principal | None:
    """``registry.authenticate`` behind a bounded cache of accepted headers."""
    cache = _caches(registry).principals
    principal = cache.get(header)
    if principal is None:
        principal = registry.authenticate(header)
        if principal is not None:
            if len(cache) >= _AUTH_CACHE_SIZE:
                cache.clear()
            cache[header] = principal
    return principal


def _authenticate(request: Request) -> Principal | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    principal = cached_principal(get_registry(request), header)
    if principal is None:
        raise Unauthorized("invalid credentials: unknown token, or team does not match it")
    return principal


def id_body(registry: Registry, schema_id: int) -> bytes:
    """The precomputed GET /schemas/ids/{id} body (schemas never change once registered)."""
    cache = _caches(registry).id_bodies
    body = cache.get(schema_id)
    if body is None:
        body = _requests.schema_by_id_body(registry.schema_by_id(schema_id))
        cache[schema_id] = body
    return body


async def optional_principal(request: Request) -> Principal | None:
    """The caller, or None without credentials; 401 for credentials that do not check out."""
    return _authenticate(request)


async def require_principal(request: Request) -> Principal:
    """The caller; 401 without valid credentials."""
    principal = _authenticate(request)
    if principal is None:
        raise Unauthorized(
            "authentication required: send 'Authorization: Bearer <token>' or HTTP Basic "
            "<team>:<token>"
        )
    return principal


async def read_principal(request: Request) -> Principal | None:
    """The caller of a read: required unless anonymous reads are switched on."""
    principal = _authenticate(request)
    if principal is None and not get_registry(request).anonymous_read:
        raise Unauthorized(
            "authentication required: send 'Authorization: Bearer <token>' or HTTP Basic "
            "<team>:<token>"
        )
    return principal


Reader = Annotated[Principal | None, Depends(read_principal)]
Writer = Annotated[Principal, Depends(require_principal)]
Reg = Annotated[Registry, Depends(get_registry)]


async def register_version(
    request: Request,
    registry: Registry,
    subject: str,
    req: _requests.Registration,
    principal: Principal,
) -> RegisterResult:
    """Register ``req`` under ``subject``: through the app's change checks when it runs a
    feature store (a change that breaks live features is refused unless the subject's owner
    sends ``force=true``), else straight into the registry."""
    changes = app_state(request).changes
    register = (
        registry.register
        if changes is None
        else functools.partial(changes.register, force=query_bool(request, "force"))
    )
    return await run_in_threadpool(
        register,
        subject,
        req.schema,
        req.schema_type,
        principal=principal,
        migration=req.migration,
        metadata=req.metadata,
    )
