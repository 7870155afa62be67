"""How the command-line tools reach a running `sluicegate serve`: its URL (settings'
``base_url``) and the admin token (``SLUICEGATE_ADMIN_TOKEN``, else the one the server
wrote to its data dir at first start)."""

from __future__ import annotations

import httpx

from registry.bootstrap import read_admin_token_file
from sluicegate.settings import Settings

__all__ = ["admin_token", "auth_headers", "server_client"]


def admin_token(settings: Settings) -> str | None:
    """The configured admin token, else the server's ``admin.token`` file, else None."""
    if settings.admin_token is not None and settings.admin_token.get_secret_value():
        return settings.admin_token.get_secret_value()
    return read_admin_token_file(settings.data_dir)


def auth_headers(settings: Settings) -> dict[str, str]:
    """The Authorization header with the admin token (none without a token)."""
    token = admin_token(settings)
    return {"Authorization": f"Bearer {token}"} if token else {}


def server_client(settings: Settings, timeout: float = 120.0) -> httpx.Client:
    """An HTTP client on the server, authorized as admin when a token is known."""
    return httpx.Client(base_url=settings.base_url, headers=auth_headers(settings), timeout=timeout)
