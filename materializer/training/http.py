"""``/v1/observations`` and ``/v1/training-sets``, answered by the process that owns the
store (in embedded mode the only one that may open chDB)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from materializer.training._api import training_set
from materializer.training._lineage import record_run
from materializer.training._model import SubjectSpine
from materializer.training._observations import (
    Observation,
    SpineWriter,
    append_observations,
    load_spine_file,
    read_spine_table,
    spine_summary,
)
from registry import Principal
from registry.http import read_principal, require_principal
from sluicegate.errors import (
    BadRequest,
    MalformedBody,
    StoreUnavailable,
    Unprocessable,
    UnsupportedMediaType,
)
from sluicegate.naming import CLICKHOUSE_DATABASE
from sluicegate.state import app_state
from sluicegate.violations import first_message, violations

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["training sets"])

PARQUET = "application/vnd.apache.parquet"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
_FILE_TYPES = {PARQUET: "parquet", "application/x-parquet": "parquet", "text/csv": "csv"}

Writer = Annotated[Principal, Depends(require_principal)]
Reader = Annotated[Principal | None, Depends(read_principal)]


def _store(request: Request) -> Any:
    client = app_state(request).clickhouse
    if client is None:
        raise StoreUnavailable("this process does not serve the store (see --role)")
    return client


def _database(request: Request) -> str:
    return CLICKHOUSE_DATABASE


class ObservationsRequest(BaseModel):
    """A batch (``observations``) or a single observation (``entities``/``time``/``labels``/
    ``id`` at the top level) for ``spine``."""

    model_config = ConfigDict(extra="forbid")

    spine: str = Field(min_length=1, max_length=200)
    observations: list[Observation] = Field(default_factory=list, max_length=100_000)

    @model_validator(mode="before")
    @classmethod
    def _single(cls, data: Any) -> Any:
        if isinstance(data, dict) and "observations" not in data and "entities" in data:
            single = {k: data[k] for k in ("entities", "time", "labels", "id") if k in data}
            rest = {k: v for k, v in data.items() if k not in single}
            return {**rest, "observations": [single]}
        return data


@router.post("/observations", status_code=201)
async def post_observations(
    request: Request,
    principal: Writer,
    spine: Annotated[
        str | None, Query(description="Spine name (files; default: by content).")
    ] = None,
    time_column: Annotated[str, Query(description="Time column of a file.")] = "observed_at",
    entity: Annotated[list[str] | None, Query(description="type=column of a file.")] = None,
    id_column: Annotated[str | None, Query(description="Observation id column of a file.")] = None,
) -> dict[str, Any]:
    """Append observations (labels) to a spine: JSON (one, or a batch), or a Parquet/CSV
    file (``Content-Type: application/vnd.apache.parquet`` or ``text/csv``). A spine
    belongs to the team that first wrote to it; other teams get 403 (admin may write)."""
    client, database = _store(request), _database(request)
    writer = SpineWriter(principal.team, principal.admin)
    body = await request.body()  # within the size limit (sluicegate/bodylimit.py)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if content_type in _FILE_TYPES:
        entities = _pairs(entity or [], "entity") or None
        fmt = _FILE_TYPES[content_type]

        def load() -> tuple[str, int]:
            return load_spine_file(
                client,
                read_spine_table(body, fmt),
                database=database,
                spine=spine,
                time_column=time_column,
                entities=entities,
                id_column=id_column,
                source_bytes=body,
                writer=writer,
            )

        name, rows = await run_in_threadpool(load)
        return {"spine": name, "accepted": rows}
    if content_type != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r}: send application/json, {PARQUET} or text/csv"
        )
    try:
        req = ObservationsRequest.model_validate(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"body is not JSON: {exc}") from exc
    except ValidationError as exc:
        raise Unprocessable(_first_error(exc), violations=_violations(exc)) from exc
    ids = await run_in_threadpool(
        append_observations,
        client,
        req.spine,
        req.observations,
        database=database,
        writer=writer,
    )
    return {"spine": req.spine, "accepted": len(ids), "ids": ids}


@router.get("/observations/{spine}")
async def get_observations(spine: str, request: Request, _: Reader) -> dict[str, Any]:
    """Rows, time range, entity types and label names of a spine."""
    return await run_in_threadpool(
        spine_summary, _store(request), spine, database=_database(request)
    )


class SpineRequest(BaseModel):
    """``{"observations": name}`` or ``{"subject": ..., "entities": {type: field}, ...}``."""

    model_config = ConfigDict(extra="forbid")

    observations: str | None = None
    subject: str | None = None
    entities: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    start: str | None = None
    end: str | None = None

    @model_validator(mode="after")
    def _one(self) -> SpineRequest:
        if (self.observations is None) == (self.subject is None):
            raise ValueError("give exactly one of `observations` (a spine name) or `subject`")
        if self.observations is not None and (
            self.entities or self.labels or self.start or self.end
        ):
            raise ValueError("entities/labels/start/end apply to a subject spine only")
        return self


class TrainingSetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spine: SpineRequest
    features: list[str] = Field(min_length=1, max_length=1000)
    arrival_time: bool = False
    format: Literal["parquet", "arrow", "report", "sql"] = "parquet"


@router.post("/training-sets")
async def post_training_set(
    body: TrainingSetRequest, request: Request, principal: Reader
) -> Response:
    """Extract a point-in-time training set. ``format``: ``parquet`` or ``arrow`` (Arrow IPC
    stream) return the rows, with the report in the schema metadata
    (``sluicegate.training_report``) and a summary in the ``Sluicegate-Report`` header;
    ``report`` runs and returns only the report; ``sql`` returns the query without running.
    Each run is recorded in ``training_runs`` (the spine, the feature versions, the team)."""
    client, database = _store(request), _database(request)
    spine = body.spine.observations or SubjectSpine(
        subject=body.spine.subject or "",
        entities=body.spine.entities,
        labels=body.spine.labels,
        start=body.spine.start,
        end=body.spine.end,
    )
    registry = app_state(request).registry

    def run() -> Response:
        job = training_set(
            client,
            spine,
            body.features,
            registry=registry,
            arrival_time=body.arrival_time,
            database=database,
        )
        if body.format == "sql":
            return Response(job.to_sql(), media_type="text/plain; charset=utf-8")
        team = principal.team if principal is not None else "anonymous"
        if body.format == "report":
            record_run(client, job.report, team, database=database)
            return Response(job.report.to_json(), media_type="application/json")
        table = job.to_arrow()
        record_run(client, job.report, team, database=database)
        sink = pa.BufferOutputStream()
        if body.format == "parquet":
            pq.write_table(table, sink)
            media = PARQUET
        else:
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            media = ARROW_STREAM
        report = job.report
        summary = {  # short: the whole report is in the schema metadata
            "rows": report.rows,
            "features": len(report.features),
            "mode": report.mode,
            "leakage_audit_passed": report.leakage_audit["passed"],
        }
        return Response(
            sink.getvalue().to_pybytes(),
            media_type=media,
            headers={"Sluicegate-Report": orjson.dumps(summary).decode()},
        )

    return await run_in_threadpool(run)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise BadRequest(f"{what} {item!r}: write it as type=column")
        out[key.strip()] = value.strip()
    return out


def _violations(exc: ValidationError) -> list[dict[str, str]]:
    return violations(exc.errors(), empty_path="body")


def _first_error(exc: ValidationError) -> str:
    return first_message(_violations(exc))
