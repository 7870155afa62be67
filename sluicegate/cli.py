"""The `sluicegate` command line: the entry point that reads the settings and wires the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cdc.cli import cdc_app
from materializer.features.cli import features_app
from materializer.loader import cli as loader_cli
from materializer.training.cli import training_set_command
from registry.cli import schemas_app, tokens_app
from sluicegate import __version__
from sluicegate.settings import Role, Settings

app = typer.Typer(
    name="sluicegate",
    help="Schema-governed ingestion gateway and CDC bridge for machine learning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(tokens_app)
app.add_typer(schemas_app)
app.add_typer(cdc_app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sluicegate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Settings come from SLUICEGATE_* environment variables (see docs/configuration.md)."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port [default: 8080].")] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Run-time state [default: .sluicegate].")
    ] = None,
    role: Annotated[str, typer.Option(help="all, registry, gateway or materializer.")] = "all",
) -> None:
    """Run the HTTP service: registry, gateway, materializer and features API."""
    import uvicorn

    from sluicegate.app import create_app

    if role not in Role.__args__:  # type: ignore[attr-defined]
        raise typer.BadParameter(f"unknown role {role!r}; choose one of {', '.join(Role.__args__)}")  # type: ignore[attr-defined]
    overrides = {
        k: v
        for k, v in {"host": host, "port": port, "data_dir": data_dir, "role": role}.items()
        if v is not None
    }
    settings = Settings(**overrides)  # type: ignore[arg-type]  # pydantic validates the overrides
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
    )


@app.command()
def migrate() -> None:
    """Apply pending migrations: the registry database and ClickHouse DDL
    (migrations/clickhouse). `sluicegate serve` also applies them at start-up."""
    from clickhouse_connect.driver.exceptions import ProgrammingError

    from migrations import apply_clickhouse_migrations
    from registry import Registry
    from sluicegate.clickhouse import connect
    from sluicegate.errors import SluicegateError

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    Registry.open(settings.registry_url).close()
    typer.echo("registry database: up to date")
    try:
        client = connect(settings.clickhouse_url, settings.data_dir)
    except ProgrammingError as exc:
        typer.echo(
            f"error: cannot open the store under {settings.data_dir} ({exc}); if `sluicegate "
            "serve` is running on it, it applied the migrations when it started",
            err=True,
        )
        raise typer.Exit(1) from exc
    try:
        applied = apply_clickhouse_migrations(client)
    except SluicegateError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    finally:
        client.close()
    for name in applied:
        typer.echo(f"clickhouse: applied {name}")
    typer.echo(f"clickhouse: {len(applied)} migration(s) applied, schema up to date")


app.command("sql")(loader_cli.sql)
app.add_typer(loader_cli.events_app, name="events")
app.add_typer(features_app, name="features")
app.command("training-set")(training_set_command)


@app.command()
def openapi(
    format: Annotated[str, typer.Option("--format", help="json or markdown.")] = "json",
) -> None:
    """Print the HTTP API's OpenAPI document (or a Markdown reference of it)."""
    import json

    from sluicegate import apidoc

    spec = apidoc.openapi()
    if format == "markdown":
        typer.echo(apidoc.markdown(spec), nl=False)
    elif format == "json":
        typer.echo(json.dumps(spec, indent=2))
    else:
        raise typer.BadParameter("--format: choose json or markdown")


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="Events the workload posts.")] = 400_000,
    users: Annotated[int, typer.Option(help="Users in the world.")] = 2_000,
    posts: Annotated[int, typer.Option(help="Posts in the world at the start.")] = 5_000,
    days: Annotated[int, typer.Option(help="Days of simulated history.")] = 30,
    out: Annotated[Path, typer.Option(help="Where the Parquet file, report and chart go.")] = Path(
        "out/demo"
    ),
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The demo's run-time state.")] = Path(
        ".run/demo"
    ),
    port: Annotated[
        int | None, typer.Option(help="Port of the demo's server (default: free).")
    ] = None,
) -> None:
    """Play the article's Reddit scenario end to end on the local stack (`make up` first):
    CDC from PostgreSQL, events through the gateway, a schema evolving mid-run, features
    with backfill, online reads and a point-in-time training set. A re-run starts clean."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        typer.echo(
            "sluicegate demo draws its charts with matplotlib: pip install 'sluicegate[demo]'",
            err=True,
        )
        raise typer.Exit(2)
    from sluicegate.demo import Options, run

    run(
        Options(
            events=events,
            users=users,
            posts=posts,
            days=days,
            out_dir=out.resolve(),
            data_dir=data_dir.resolve(),
            port=port,
        )
    )


def main(argv: list[str] | None = None) -> None:
    app(args=argv)
