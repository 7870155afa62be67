"""``sluicegate sql`` and ``sluicegate events``: look at the store through the running
``sluicegate serve`` (the process that owns it), over its ``/v1/sql`` endpoint."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer

from sluicegate.serveapi import auth_headers
from sluicegate.settings import Settings

events_app = typer.Typer(
    help="What the materializer loaded: counts per subject, recent events, dead letters.",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
)


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    TSV = "tsv"


def run_sql(query: str, settings: Settings | None = None) -> dict[str, Any]:
    """POST ``query`` to the running server's ``/v1/sql``; exits with its error message."""
    settings = settings or Settings()
    headers = auth_headers(settings)
    try:
        response = httpx.post(
            settings.base_url + "/v1/sql", json={"query": query}, headers=headers, timeout=300
        )
    except httpx.HTTPError as exc:
        typer.echo(
            f"error: cannot reach `sluicegate serve` at {settings.base_url} ({exc}); "
            "start it, or set SLUICEGATE_SERVER_URL",
            err=True,
        )
        raise typer.Exit(2) from exc
    body = response.json() if response.content else {}
    if response.status_code != 200:
        typer.echo(f"error: {body.get('message', response.text)}", err=True)
        raise typer.Exit(1)
    return body


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def print_result(result: dict[str, Any], fmt: Format) -> None:
    columns: list[str] = result["columns"]
    rows: list[list[Any]] = result["rows"]
    if fmt is Format.JSON:
        for row in rows:
            typer.echo(orjson.dumps(dict(zip(columns, row, strict=True))).decode())
        return
    cells = [[_cell(v) for v in row] for row in rows]
    if fmt is Format.TSV:
        typer.echo("\t".join(columns))
        for row_cells in cells:
            typer.echo("\t".join(c.replace("\t", "\\t").replace("\n", "\\n") for c in row_cells))
        return
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    typer.echo("  ".join("-" * w for w in widths))
    for row_cells in cells:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row_cells, widths, strict=True)).rstrip())
    typer.echo(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


FormatOption = Annotated[Format, typer.Option("--format", "-f", help="table, json or tsv.")]


def sql(
    query: Annotated[str, typer.Argument(help="A read-only ClickHouse query.")],
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Run read-only ClickHouse SQL (readonly=1) on the store of the running server.

    Tables live in database `sluicegate`: events, dead_letters and the feature tables.
    """
    print_result(run_sql(query), fmt)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@events_app.callback()
def events(ctx: typer.Context, fmt: FormatOption = Format.TABLE) -> None:
    """Events per subject (count, first and last event time, last load); subcommands
    show recent events and dead letters."""
    if ctx.invoked_subcommand is not None:
        return
    print_result(
        run_sql(
            "SELECT subject, count() AS events, min(occurred_at) AS first_occurred, "
            "max(occurred_at) AS last_occurred, max(ingested_at) AS last_ingested "
            "FROM events GROUP BY subject ORDER BY subject"
        ),
        fmt,
    )


@events_app.command()
def tail(
    subject: Annotated[str | None, typer.Option(help="Only this subject.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000)] = 20,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """The most recently ingested events, newest first."""
    where = f"WHERE subject = {_quote(subject)} " if subject else ""
    print_result(
        run_sql(
            "SELECT ingested_at, occurred_at, subject, entity_key, event_id, source, op, "
            f"payload_version, payload FROM events {where}"
            f"ORDER BY ingested_at DESC, event_id DESC LIMIT {limit}"
        ),
        fmt,
    )


@events_app.command("dead-letters")
def dead_letters(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000)] = 20,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Records that could not be loaded, newest first, with their id (topic:partition:offset,
    for `events replay --dead-letter`) and reason."""
    print_result(
        run_sql(
            "SELECT at, concat(topic, ':', toString(partition), ':', toString(offset)) AS id, "
            "error, key, substring(value, 1, 200) AS value_head "
            f"FROM dead_letters ORDER BY at DESC, topic, partition, offset LIMIT {limit}"
        ),
        fmt,
    )


def _api(method: str, path: str, token: str | None, **kwargs: Any) -> Any:
    """Call the running server (``token``, else the admin token); exits with its error."""
    settings = Settings()
    headers = {"Authorization": f"Bearer {token}"} if token else auth_headers(settings)
    try:
        response = httpx.request(
            method, settings.base_url + path, headers=headers, timeout=120, **kwargs
        )
    except httpx.HTTPError as exc:
        typer.echo(
            f"error: cannot reach `sluicegate serve` at {settings.base_url} ({exc})", err=True
        )
        raise typer.Exit(2) from exc
    body = response.json() if response.content else {}
    if response.status_code >= 400:
        typer.echo(f"error {response.status_code}: {body.get('message', response.text)}", err=True)
        for v in body.get("violations", [])[:20]:
            typer.echo(f"  {v.get('path')}: {v.get('rule')}: {v.get('message')}", err=True)
        raise typer.Exit(1)
    return body


TokenOption = Annotated[
    str | None,
    typer.Option(envvar="SLUICEGATE_TOKEN", help="A team token [default: the admin token]."),
]


@events_app.command("rejections")
def rejections(
    subject: Annotated[str, typer.Argument(help="The subject whose rejections to list.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    token: TokenOption = None,
) -> None:
    """Events the gateway refused for SUBJECT, newest first: id, time, reason, the first
    violation and whether it was replayed (the subject's owner team or an admin)."""
    body = _api("GET", f"/v1/rejections/{subject}", token, params={"limit": limit})
    for r in body["rejections"]:
        first = r["violations"][0] if r["violations"] else {}
        done = f"replayed {r['replayed']['at']}" if r.get("replayed") else "not replayed"
        typer.echo(
            f"{r['id']}  {r['received_at']}  {r['reason']}  "
            f"{first.get('path', '$')}: {first.get('message', '')}  ({done})"
        )


@events_app.command("replay")
def replay(
    rejection: Annotated[
        str | None, typer.Option(help="A rejection id (see `events rejections`).")
    ] = None,
    subject: Annotated[str | None, typer.Option(help="The rejection's subject.")] = None,
    body: Annotated[
        Path | None, typer.Option(help="A JSON file with the corrected event (rejections).")
    ] = None,
    version: Annotated[
        int | None, typer.Option(min=1, help="Validate against this version (rejections).")
    ] = None,
    dead_letter: Annotated[
        str | None,
        typer.Option("--dead-letter", help="A dead letter id topic:partition:offset."),
    ] = None,
    token: TokenOption = None,
) -> None:
    """Validate a rejected event (as sent, or corrected with --body) or a dead-lettered
    record again and produce it with its original event id and time; each at most once."""
    if (rejection is None) == (dead_letter is None):
        raise typer.BadParameter(
            "give exactly one of --rejection (with --subject) or --dead-letter"
        )
    if dead_letter is not None:
        answer = _api("POST", f"/v1/dead-letters/{dead_letter}/replay", token)
    else:
        if subject is None:
            raise typer.BadParameter("--rejection needs --subject")
        content = body.read_bytes() if body is not None else b""
        answer = _api(
            "POST",
            f"/v1/rejections/{subject}/{rejection}/replay",
            token,
            params={"version": version} if version else None,
            content=content,
        )
    typer.echo(
        f"replayed as event {answer['event_id']} to {answer['topic']} "
        f"partition {answer['partition']} offset {answer['offset']}"
    )
