"""``POST /v1/sql``: read-only ClickHouse SQL, answered by the process that owns the store."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from sluicegate.errors import StoreUnavailable, Unauthorized

router = APIRouter(tags=["sql"])


class SqlRequest(BaseModel):
    """A read-only query (SELECT, SHOW, DESCRIBE, EXPLAIN ...)."""

    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=1_000_000)


def _check_caller(request: Request) -> None:
    registry = request.app.state.registry
    principal = registry.authenticate(request.headers.get("authorization"))
    if principal is None and not request.app.state.settings.anonymous_read:
        raise Unauthorized("a valid token is required (Authorization: Bearer <token>)")


@router.post("/v1/sql")
async def sql(body: SqlRequest, request: Request) -> dict[str, Any]:
    """Run read-only SQL on the store (``readonly = 1``, ``final = 1``): `events`,
    `dead_letters` and the feature tables of database `sluicegate`."""
    _check_caller(request)
    runner = getattr(request.app.state, "sql", None)
    if runner is None:
        raise StoreUnavailable("this process does not serve the store (see --role)")
    result = await run_in_threadpool(runner.run, body.query)
    return result.as_dict()
