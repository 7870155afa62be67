"""``/v1/cdc``: what the bridge is doing, per database and table (state, last error, held
offset, schema version), with the connector's state from Kafka Connect."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from cdc._service import CdcService
from registry import Principal
from registry.http import read_principal
from sluicegate.errors import ResourceNotFound
from sluicegate.state import app_state

__all__ = ["router"]

router = APIRouter(prefix="/v1/cdc", tags=["cdc"])
Reader = Annotated[Principal | None, Depends(read_principal)]


def _service(request: Request) -> CdcService:
    service = app_state(request).cdc
    if service is None:
        raise ResourceNotFound("CDC is not configured: set SLUICEGATE_CDC_CONFIG_DIR")
    return service


@router.get("")
async def cdc_overview(request: Request, _: Reader) -> dict[str, Any]:
    """Every bridged database, and config files that failed validation."""
    return await run_in_threadpool(_service(request).overview)


@router.get("/{name}")
async def cdc_database(name: str, request: Request, _: Reader) -> dict[str, Any]:
    """One database: per table its state (running/stopped), error, held offset and version."""
    return await run_in_threadpool(_service(request).status, name)
