"""The `sluicegate` command line: the entry point that reads the settings and wires the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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

    overrides = {
        k: v for k, v in {"host": host, "port": port, "data_dir": data_dir}.items() if v is not None
    }
    settings = Settings(**overrides)  # type: ignore[arg-type]  # pydantic validates the overrides
    if role not in Role.__args__:  # type: ignore[attr-defined]
        raise typer.BadParameter(f"unknown role {role!r}; choose one of {', '.join(Role.__args__)}")  # type: ignore[attr-defined]
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
    )


def main() -> None:
    app()
