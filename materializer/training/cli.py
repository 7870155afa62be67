"""``sluicegate training-set``: extract a training set through the running ``sluicegate
serve`` (the process that owns the store) and write it next to its report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import typer

from materializer.training._job import report_from_arrow, report_path
from sluicegate.serveapi import auth_headers
from sluicegate.settings import Settings

__all__ = ["training_set_command"]

_FILE_TYPES = {".parquet": "application/vnd.apache.parquet", ".csv": "text/csv"}
_ARROW_SUFFIXES = (".arrow", ".arrows", ".ipc", ".feather")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _post(client: httpx.Client, path: str, **kwargs: Any) -> httpx.Response:
    try:
        response = client.post(path, **kwargs)
    except httpx.HTTPError as exc:
        raise _fail(
            f"cannot reach `sluicegate serve` at {client.base_url} ({exc}); start it, or set "
            "SLUICEGATE_SERVER_URL",
            2,
        ) from exc
    if response.status_code >= 400:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        raise _fail(message)
    return response


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise _fail(f"--{what} {item!r}: write it as name=field")
        out[key] = value
    return out


def _spine(
    client: httpx.Client,
    spec: str,
    entities: dict[str, str],
    labels: dict[str, str],
    time_column: str,
    start: str | None,
    end: str | None,
) -> dict[str, Any]:
    """The request's spine: ``subject:NAME``, a .parquet/.csv file (uploaded as
    observations first), or the name of an observations spine."""
    if spec.startswith("subject:"):
        if not entities:
            raise _fail("a subject spine needs --entity TYPE=FIELD (e.g. --entity user=user_id)")
        return {
            "subject": spec.removeprefix("subject:"),
            "entities": entities,
            "labels": labels,
            "start": start,
            "end": end,
        }
    path = Path(spec)
    if path.suffix.lower() in _FILE_TYPES and path.exists():
        params: list[tuple[str, str]] = [("time_column", time_column)]
        params += [("entity", f"{k}={v}") for k, v in entities.items()]
        response = _post(
            client,
            "/v1/observations",
            content=path.read_bytes(),
            params=params,
            headers={"Content-Type": _FILE_TYPES[path.suffix.lower()]},
        )
        name = response.json()["spine"]
        typer.echo(
            f"spine: {path} -> observations {name!r} ({response.json()['accepted']} rows)", err=True
        )
        return {"observations": name}
    if path.suffix.lower() in _FILE_TYPES:
        raise _fail(f"spine file {spec} does not exist")
    return {"observations": spec.removeprefix("observations:")}


def training_set_command(
    spine: Annotated[
        str,
        typer.Option(
            help="Observations spine name, subject:NAME (every event is a row), or a "
            ".parquet/.csv file."
        ),
    ],
    features: Annotated[str, typer.Option(help="Comma-separated feature names (name@v pins).")],
    out: Annotated[
        Path | None,
        typer.Option(help="Output file: .parquet, or .arrow/.ipc/.feather for Arrow IPC."),
    ] = None,
    arrival_time: Annotated[
        bool,
        typer.Option(
            "--arrival-time", help="Also require ingested_at < t: what serving knew at t."
        ),
    ] = False,
    print_sql: Annotated[
        bool,
        typer.Option("--print-sql", help="Print the ClickHouse SQL and exit without running it."),
    ] = False,
    entity: Annotated[
        list[str] | None,
        typer.Option(
            help="TYPE=FIELD: an entity key of a subject spine (payload field) or a file (column)."
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(help="NAME=FIELD: a payload field copied as a label (subject spines)."),
    ] = None,
    time_column: Annotated[str, typer.Option(help="Time column of a spine file.")] = "observed_at",
    start: Annotated[str | None, typer.Option(help="Subject spine: rows from this time.")] = None,
    end: Annotated[str | None, typer.Option(help="Subject spine: rows before this time.")] = None,
) -> None:
    """Point-in-time training set: each spine row with every feature as it was strictly
    before the row's time. Writes OUT and OUT's report (.report.json) next to it."""
    if not print_sql and out is None:
        raise _fail("give --out FILE (or --print-sql)", 2)
    fmt = (
        "sql"
        if print_sql
        else ("arrow" if out is not None and out.suffix.lower() in _ARROW_SUFFIXES else "parquet")
    )
    names = [f.strip() for f in features.split(",") if f.strip()]
    if not names:
        raise _fail("--features: name at least one feature", 2)
    settings = Settings()
    headers = auth_headers(settings)
    with httpx.Client(base_url=settings.base_url, headers=headers, timeout=3600) as client:
        request = {
            "spine": _spine(
                client,
                spine,
                _pairs(entity or [], "entity"),
                _pairs(label or [], "label"),
                time_column,
                start,
                end,
            ),
            "features": names,
            "arrival_time": arrival_time,
            "format": fmt,
        }
        response = _post(client, "/v1/training-sets", json=request)
    if print_sql:
        typer.echo(response.text)
        return
    assert out is not None
    out.write_bytes(response.content)
    if fmt == "parquet":
        schema = pq.read_schema(out)
    else:
        with pa.ipc.open_stream(response.content) as reader:
            schema = reader.schema
    report = report_from_arrow(schema)
    if report is None:
        raise _fail(f"the server's answer has no training-set report ({out} was written)")
    report_file = report_path(out)
    report_file.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    audit = "passed" if report["leakage_audit"]["passed"] else "FAILED"
    typer.echo(
        f"{out}: {report['rows']} rows x {len(report['features'])} features "
        f"({report['mode'].replace('_', ' ')}), leakage audit {audit}; report {report_file}"
    )
    if not report["leakage_audit"]["passed"]:
        raise typer.Exit(1)
