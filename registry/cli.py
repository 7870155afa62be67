"""`sluicegate tokens ...`: token management against the running `sluicegate serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer

from sluicegate.serveapi import admin_token, auth_headers
from sluicegate.settings import Settings

tokens_app = typer.Typer(
    name="tokens",
    help="Create API tokens for teams.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _admin_token(settings: Settings) -> str:
    token = admin_token(settings)
    if not token:
        typer.echo(
            f"no admin token: set SLUICEGATE_ADMIN_TOKEN or start `sluicegate serve` once so "
            f"it writes {settings.data_dir / 'admin.token'}",
            err=True,
        )
        raise typer.Exit(2)
    return token


@tokens_app.command("create")
def create(
    team: Annotated[str, typer.Option(help="The team the token belongs to.")],
    subjects: Annotated[
        str | None,
        typer.Option(help="Subject patterns (fnmatch, comma separated) it may produce to."),
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make it an admin token.")] = False,
) -> None:
    """Create a token for TEAM and print it (it is shown only once)."""
    settings = Settings()
    url = f"{settings.base_url}/v1/tokens"
    try:
        response = httpx.post(
            url,
            json={"team": team, "subjects": subjects, "admin": admin},
            headers={"Authorization": f"Bearer {_admin_token(settings)}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach sluicegate at {settings.base_url}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if response.status_code != 201:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        typer.echo(f"error {response.status_code}: {message}", err=True)
        raise typer.Exit(1)
    typer.echo(response.json()["token"])


schemas_app = typer.Typer(
    name="schemas",
    help="Check schema changes before registering them.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _schema_type(file: Path, given: str | None) -> str:
    if given:
        return given.upper()
    return "AVRO" if file.suffix.lower() in (".avsc", ".avro") else "JSON"


@schemas_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The candidate schema (.json or .avsc).")],
    subject: Annotated[str, typer.Option(help="The subject it would become a version of.")],
    schema_type: Annotated[
        str | None,
        typer.Option("--type", help="JSON or AVRO [default: from the file's extension]."),
    ] = None,
    migration: Annotated[
        Path | None,
        typer.Option(help="A JSON file with the migration operations from the latest version."),
    ] = None,
    sample: Annotated[
        int, typer.Option(help="Stored events validated in full (0-100000; 0: none).")
    ] = 1000,
    log: Annotated[
        bool, typer.Option("--log/--no-log", help="Check against the stored events.")
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole answer as JSON.")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(envvar="SLUICEGATE_TOKEN", help="A team token [default: the admin token]."),
    ] = None,
) -> None:
    """Check FILE as the next version of SUBJECT against the compatibility level, every
    stored event and the features that read it. Exits 1 when it would be refused, when
    stored events would not read as it, or when it breaks a feature."""
    settings = Settings()
    if not file.is_file():
        typer.echo(f"error: {file}: no such file", err=True)
        raise typer.Exit(2)
    body: dict[str, Any] = {
        "schema": file.read_text(),
        "schemaType": _schema_type(file, schema_type),
    }
    if migration is not None:
        try:
            body["migration"] = orjson.loads(migration.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            typer.echo(f"error: --migration {migration}: {exc}", err=True)
            raise typer.Exit(2) from exc
    headers = {"Authorization": f"Bearer {token}"} if token else auth_headers(settings)
    try:
        response = httpx.post(
            f"{settings.base_url}/v1/subjects/{subject}/check",
            params={"sample": sample, "log": str(log).lower()},
            json=body,
            headers=headers,
            timeout=600,
        )
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach sluicegate at {settings.base_url}: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        answer = response.json()
    except ValueError:
        answer = {"message": response.text}
    if response.status_code != 200:
        typer.echo(f"error {response.status_code}: {answer.get('message', answer)}", err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(_report(answer))
    failed = (
        not answer["is_compatible"]
        or bool(answer.get("log") and not answer["log"]["ok"])
        or bool(answer.get("impact") and answer["impact"]["breaks"])
    )
    raise typer.Exit(1 if failed else 0)


def _report(answer: dict[str, Any]) -> str:
    """The answer of ``POST /v1/subjects/{s}/check`` for a person."""
    lines = [
        f"{answer['subject']} version {answer['version']}: "
        + ("accepted" if answer["is_compatible"] else "refused by the compatibility level")
    ]
    lines += [f"  {m}" for m in answer["messages"]]
    log = answer.get("log")
    if log:
        lines.append(f"stored events: {log['summary']}")
        for v in log["violations"] + log["sample"]["violations"]:
            lines.append(
                f"  {v['path']} {v['rule']}: {v['events']:,} events, "
                f"first ids {', '.join(v['first_ids'])}"
            )
    impact = answer.get("impact")
    if impact:
        changed = []
        for how, which in impact["fields"].items():
            if how == "renamed":
                changed += [f"renamed {old} -> {new}" for old, new in which.items()]
            elif isinstance(which, dict):  # retyped: path -> "integer -> string"
                changed += [f"{how} {k} ({v})" for k, v in which.items()]
            else:
                changed += [f"{how} {k}" for k in which]
        lines.append("fields changed: " + (", ".join(changed) or "none"))
        for f in impact["features"]:
            state = f"BREAKS: {f['reason']}" if f["breaks"] else "still compiles"
            reads = ", ".join(f["reads"]) or "-"
            lines.append(f"  feature {f['feature']} (team {f['owner']}) reads {reads}: {state}")
    return "\n".join(lines)
