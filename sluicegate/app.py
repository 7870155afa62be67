"""The composition root of `sluicegate serve`: builds the clients from the settings, mounts
every package's router on one FastAPI app and starts the background consumers.

Nothing else constructs clients or reads the environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry
from pydantic_core import PydanticSerializationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cdc import router as cdc_router
from cdc import start_cdc
from console import router as console_router
from gateway import router as gateway_router
from gateway import start_gateway
from materializer.changes import ChangeChecks
from materializer.features import FeatureStore, SubjectViews
from materializer.features import router as features_router
from materializer.loader import (
    MAX_RESULT_ROWS,
    LoaderMetrics,
    ReadOnlySql,
    RejectionsLoader,
    ReplayLog,
    group_id,
    start_materializer,
)
from materializer.loader import router as sql_router
from materializer.training.http import router as training_router
from migrations import apply_clickhouse_migrations
from registry import Registry
from registry import http as registry_http
from registry.bootstrap import ensure_admin_token
from sluicegate import __version__
from sluicegate.bodylimit import BodyLimit
from sluicegate.clickhouse import connect, connect_readonly, query_limits
from sluicegate.errors import BadRequest, SluicegateError, TooManyRequests, Unavailable
from sluicegate.heap import settle_heap
from sluicegate.naming import CLICKHOUSE_DATABASE
from sluicegate.settings import Settings
from sluicegate.sqlgate import load_allowlist
from sluicegate.state import AppState
from sluicegate.violations import first_message, violations


def _json(body: dict[str, Any]) -> bytes:
    """JSON of an error body; text a caller sent that is not valid Unicode (a lone
    surrogate) is escaped rather than failing the answer."""
    try:
        return json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(body).encode()


def _error_response(exc: SluicegateError) -> Response:
    retry_after = exc.retry_after if isinstance(exc, Unavailable | TooManyRequests) else None
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return Response(
        _json(exc.body()), status_code=exc.status, headers=headers, media_type="application/json"
    )


def create_app(settings: Settings) -> FastAPI:
    """Build the HTTP service for ``settings``: every role in one process by default.

    Roles: ``registry`` serves the registry only; ``gateway`` adds HTTP ingest and the CDC
    bridge (the producers of governed topics); ``materializer`` adds the ClickHouse side
    (loader, SQL, features, training sets); ``all`` is both.
    """
    serves_ingest = settings.role in ("all", "gateway")
    serves_store = settings.role in ("all", "materializer")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        admin = settings.admin_token.get_secret_value() if settings.admin_token else None
        registry = Registry.open(
            settings.registry_url,
            admin_token=ensure_admin_token(settings.data_dir, admin),
            anonymous_read=settings.anonymous_read,
        )
        state = AppState(settings=settings, registry=registry, metrics=CollectorRegistry())
        app.state.sluicegate = state
        if serves_ingest:
            state.gateway = start_gateway(settings, lambda: state.registry, state.metrics)
        views: SubjectViews | None = None
        rejections: RejectionsLoader | None = None
        if serves_store:
            state.clickhouse = connect(settings.clickhouse_url, settings.data_dir)
            apply_clickhouse_migrations(state.clickhouse)
            # the functions caller SQL may call: one read of system.functions for the SQL
            # runner and the feature definitions both
            allowlist = load_allowlist(state.clickhouse)
            limits = query_limits(
                settings.sql_max_execution_s, settings.sql_max_memory_bytes, MAX_RESULT_ROWS
            )
            state.sql = ReadOnlySql(
                [
                    connect_readonly(
                        settings.clickhouse_url,
                        settings.data_dir,
                        limits,
                        read_url=settings.clickhouse_read_url,
                    )
                    for _ in range(settings.sql_pool_size)
                ],
                allowlist,
                max_execution_s=settings.sql_max_execution_s,
            )
            state.materializer = start_materializer(
                connect(settings.clickhouse_url, settings.data_dir),
                registry,
                kafka_bootstrap=settings.kafka_bootstrap,
                sole_loader=settings.clickhouse_url is None,
                subscription=settings.materialize_topics,
                metrics=LoaderMetrics(state.metrics),
            )
            state.features = FeatureStore(
                connect(settings.clickhouse_url, settings.data_dir),
                [connect(settings.clickhouse_url, settings.data_dir) for _ in range(2)],
                registry,
                functions=allowlist,
                metrics=state.metrics,
            )
            state.changes = ChangeChecks(
                registry, state.features, connect(settings.clickhouse_url, settings.data_dir)
            )
            state.replays = ReplayLog(connect(settings.clickhouse_url, settings.data_dir), registry)
            rejections = RejectionsLoader(
                connect(settings.clickhouse_url, settings.data_dir),
                settings.kafka_bootstrap,
                group_id(state.clickhouse),
            )
            rejections.start()
            views = SubjectViews(
                connect(settings.clickhouse_url, settings.data_dir), registry, CLICKHOUSE_DATABASE
            )
            views.start()
        if serves_ingest:
            # the database passwords of the CDC configs are in the environment
            state.cdc = start_cdc(settings, registry, state.metrics, os.environ)
        settle_heap()
        try:
            yield
        finally:
            if state.cdc is not None:
                state.cdc.stop()
            if views is not None:
                views.stop()
            if rejections is not None:
                rejections.stop()
            if state.features is not None:
                state.features.close()
            if state.materializer is not None:
                state.materializer.stop()
            if state.gateway is not None:
                state.gateway.close()
            registry.close()

    app = FastAPI(
        title="Sluicegate",
        version=__version__,
        description="Schema-governed ingestion gateway and CDC bridge for machine learning.",
        lifespan=lifespan,
    )

    @app.exception_handler(SluicegateError)
    async def _sluicegate_error(_: Request, exc: SluicegateError) -> Response:
        return _error_response(exc)

    @app.exception_handler(UnicodeEncodeError)
    @app.exception_handler(PydanticSerializationError)
    async def _not_unicode(_: Request, exc: Exception) -> Response:
        # a string the caller sent held a lone surrogate: JSON parsers accept the escape,
        # but the text cannot be encoded anywhere (Kafka, ClickHouse, the answer)
        return _error_response(
            BadRequest(
                "the request holds text that is not valid Unicode (a lone surrogate "
                "such as \\ud800); send UTF-8 text"
            )
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # unknown routes and methods answer in the same shape as every other error
        code = {404: 40400, 405: 40500}.get(exc.status_code, exc.status_code * 100)
        return JSONResponse(
            {"error_code": code, "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        found = violations(exc.errors())
        return JSONResponse(
            {"error_code": 42200, "message": first_message(found), "violations": found},
            status_code=422,
        )

    if serves_ingest:
        app.include_router(gateway_router)
        app.include_router(cdc_router)
    if serves_store:
        app.include_router(sql_router)
        app.include_router(features_router)
        app.include_router(training_router)
    for router in registry_http.routers:
        app.include_router(router)
    app.include_router(console_router)
    # deserializers' schema-by-id lookups answered before routing (see registry/http.py)
    app.add_middleware(registry_http.SchemaLookupFastPath)
    # outermost: no body beyond the limit is read, parsed or authenticated
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    return app
