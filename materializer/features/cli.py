"""`sluicegate features ...`: manage feature definitions through the running `sluicegate
serve` (which owns the store), with a progress bar for backfills and rebuilds."""

from __future__ import annotations

import difflib
import json
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from materializer.features.definition import parse_definitions
from sluicegate.errors import InvalidDefinition
from sluicegate.serveapi import server_client
from sluicegate.settings import Settings

__all__ = ["features_app"]

features_app = typer.Typer(
    name="features",
    help="Define, backfill, inspect and read features.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
_err = Console(stderr=True)


def _call(method: str, path: str, **kwargs: Any) -> Any:
    with server_client(Settings()) as client:
        try:
            resp = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            typer.echo(
                f"error: cannot reach `sluicegate serve` at {client.base_url} ({exc}); "
                "start it with `sluicegate serve`",
                err=True,
            )
            raise typer.Exit(2) from exc
    if resp.status_code >= 400:
        try:
            body = resp.json()
            message = body.get("message", resp.text)
        except ValueError:
            message = resp.text
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1)
    return resp.json()


def _read_files(files: list[Path]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in files:
        paths = sorted(f.glob("*.y*ml")) if f.is_dir() else [f]
        for p in paths:
            text = p.read_text(encoding="utf-8")
            try:
                defns = parse_definitions(text)
            except InvalidDefinition as exc:
                typer.echo(f"error: {p}: {exc.message}", err=True)
                raise typer.Exit(1) from exc
            out += [d.spec() for d in defns]
    return out


def follow(job: dict[str, Any]) -> dict[str, Any]:
    """Poll a job, drawing a progress bar with an ETA until it ends."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[count]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_err, transient=False) as bar:
        task = bar.add_task(f"{job['kind']} {', '.join(job['features'])}", total=None, count="")
        while True:
            job = _call("GET", f"/v1/features/_jobs/{job['id']}")
            bar.update(
                task,
                completed=job["done"],
                total=job["total"] or None,
                description=f"{job['kind']} {', '.join(job['features'])}: {job['phase']}",
                count=f"{job['done']:,}/{job['total']:,} events",
            )
            if job["state"] != "running":
                if job["total"] == 0:
                    bar.update(task, total=1, completed=1)
                break
            time.sleep(0.2)
    if job["state"] == "failed":
        typer.echo(f"error: {job['kind']} failed: {job['error']}", err=True)
        raise typer.Exit(1)
    return job


@features_app.command("apply")
def apply(
    files: Annotated[list[Path], typer.Argument(help="YAML files or directories of them.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and plan only.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait for the backfill, showing progress.")] = True,
) -> None:
    """Create or update features; new versions are backfilled from `events`."""
    body = _call(
        "POST",
        "/v1/features/_definitions",
        json={"definitions": _read_files(files), "dry_run": dry_run},
    )
    for r in body["results"]:
        typer.echo(f"{r['name']}@{r['version']}: {r['action'].replace('_', ' ')}")
    if body.get("job") and wait:
        follow(body["job"])
    elif body.get("job"):
        typer.echo(f"backfill job {body['job']['id']} running")


@features_app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The feature catalog."""
    body = _call("GET", "/v1/features")
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    header = ("feature", "entity", "source", "owner", "status", "fresh as of", "lag", "description")
    rows = []
    for f in body["features"]:
        fresh = f.get("freshness_ms")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(fresh / 1000)) if fresh else "-"
        lag = f.get("freshness_lag_ms")
        rows.append(
            (
                f"{f['name']}@{f['version']}",
                f["entity"]["type"],
                f["source"],
                f["owner"],
                f["status"],
                when,
                f"{lag} ms" if lag is not None else "-",
                f["description"],
            )
        )
    console = Console()
    if not console.is_terminal:  # pipes and scripts get one tab-separated line per feature
        for row in [header, *rows]:
            typer.echo("\t".join(row))
        return
    table = Table(*header)
    for row in rows:
        table.add_row(*row)
    console.print(table)


@features_app.command("show")
def show(name: Annotated[str, typer.Argument(help="Feature name.")]) -> None:
    """Every version of a feature, as stored."""
    typer.echo(json.dumps(_call("GET", f"/v1/features/_definitions/{name}"), indent=2))


@features_app.command("diff")
def diff(files: Annotated[list[Path], typer.Argument(help="YAML files or directories.")]) -> None:
    """Differences between files and the stored current versions (and what apply would do)."""
    specs = _read_files(files)
    plan = _call("POST", "/v1/features/_definitions", json={"definitions": specs, "dry_run": True})
    for spec, result in zip(specs, plan["results"], strict=True):
        stored: dict[str, Any] = {}
        if result["action"] != "created":
            versions = _call("GET", f"/v1/features/_definitions/{spec['name']}")["versions"]
            active = [v for v in versions if v["status"] == "active"]
            stored = max(active, key=lambda v: v["version"])["definition"] if active else {}
        old = yaml.safe_dump(stored, sort_keys=True).splitlines() if stored else []
        new = yaml.safe_dump(spec, sort_keys=True).splitlines()
        typer.echo(f"# {spec['name']}: {result['action'].replace('_', ' ')}")
        for line in difflib.unified_diff(old, new, "stored", "file", lineterm=""):
            typer.echo(line)


@features_app.command("delete")
def delete(
    ref: Annotated[str, typer.Argument(help="name (every version) or name@version.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete a feature version (or all versions) and its tables."""
    if not yes:
        typer.confirm(f"delete {ref} and its tables?", abort=True)
    body = _call("DELETE", f"/v1/features/_definitions/{ref}")
    for r in body["deleted"]:
        typer.echo(f"deleted {r}")


@features_app.command("rebuild")
def rebuild(
    names: Annotated[list[str] | None, typer.Argument(help="Features (default: all).")] = None,
) -> None:
    """Rebuild feature tables from `events`; the current tables serve until it is done."""
    body = _call("POST", "/v1/features/_rebuild", json={"names": names or None})
    follow(body["job"])
    typer.echo(f"rebuilt {', '.join(body['job']['features']) or 'nothing'}")


@features_app.command("get")
def get(
    entity_type: Annotated[str, typer.Argument(help="Entity type, e.g. user.")],
    keys: Annotated[list[str], typer.Argument(help="Entity keys.")],
    names: Annotated[str | None, typer.Option(help="Comma-separated features.")] = None,
) -> None:
    """Online values for one or more entities (JSON)."""
    if len(keys) == 1:
        params = {"names": names} if names else {}
        body = _call("GET", f"/v1/features/{entity_type}/{keys[0]}", params=params)
    else:
        body = _call(
            "POST",
            f"/v1/features/{entity_type}/batch",
            json={"keys": keys, "names": names.split(",") if names else None},
        )
    typer.echo(json.dumps(body, indent=2))
