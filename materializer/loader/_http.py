"""``POST /v1/sql``: read-only ClickHouse SQL, answered by the process that owns the store."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from sluicegate.errors import StoreUnavailable, Unauthorized
from sluicegate.state import app_state

router = APIRouter(tags=["sql"])


class SqlRequest(BaseModel):
    """A read-only query (SELECT, SHOW, DESCRIBE, EXPLAIN ...)."""

    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=1_000_000)


def _caller(request: Request) -> tuple[str, bool]:
    """(team, whether it is an admin) of the caller."""
    state = app_state(request)
    registry = state.registry
    principal = registry.authenticate(request.headers.get("authorization"))
    if principal is None:
        if not state.settings.anonymous_read:
            raise Unauthorized("a valid token is required (Authorization: Bearer <token>)")
        return "anonymous", False
    return str(principal.team), principal.admin


@router.post("/v1/sql")
async def sql(body: SqlRequest, request: Request) -> dict[str, Any]:
    """Run read-only SQL on the store (``readonly = 1``, ``final = 1``): one SELECT, SHOW,
    DESCRIBE or EXPLAIN over the tables of database `sluicegate` (`events`, `dead_letters`,
    the feature tables; `rejections` for an admin) and `system.tables`/`columns`, with pure
    functions only (see docs/security.md)."""
    team, admin = _caller(request)
    runner = app_state(request).sql
    if runner is None:
        raise StoreUnavailable("this process does not serve the store (see --role)")
    result = await run_in_threadpool(lambda: runner.run(body.query, team, admin=admin))
    return result.as_dict()
