"""`sluicegate tokens ...`: token management against the running `sluicegate serve`."""

from __future__ import annotations

from typing import Annotated

import httpx
import typer

from sluicegate.serveapi import admin_token
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
