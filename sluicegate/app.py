"""The composition root of `sluicegate serve`: builds the clients from the settings, mounts
every package's router on one FastAPI app and starts the background consumers.

Nothing else constructs clients or reads the environment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse

from sluicegate import __version__
from sluicegate.errors import SluicegateError, Unavailable
from sluicegate.settings import Settings


def _error_response(exc: SluicegateError) -> ORJSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Unavailable) else None
    return ORJSONResponse(exc.body(), status_code=exc.status, headers=headers)


def create_app(settings: Settings) -> FastAPI:
    """Build the whole HTTP service for ``settings`` (all roles in one process by default)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        app.state.settings = settings
        yield

    app = FastAPI(
        title="Sluicegate",
        version=__version__,
        description="Schema-governed ingestion gateway and CDC bridge for machine learning.",
        default_response_class=ORJSONResponse,
        lifespan=lifespan,
    )

    @app.exception_handler(SluicegateError)
    async def _sluicegate_error(_: Request, exc: SluicegateError) -> ORJSONResponse:
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_: Request, exc: RequestValidationError) -> ORJSONResponse:
        violations = [
            {"path": ".".join(str(p) for p in e["loc"]), "rule": e["type"], "message": e["msg"]}
            for e in exc.errors()
        ]
        first = violations[0] if violations else {"path": "", "message": "invalid request"}
        return ORJSONResponse(
            {
                "error_code": 42200,
                "message": f"{first['path']}: {first['message']}",
                "violations": violations,
            },
            status_code=422,
        )

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    return app
