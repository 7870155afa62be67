"""The ClickHouse client factory: chDB embedded under the data directory by default, a
ClickHouse server when a URL is given. Both go through clickhouse-connect, so every query
in Sluicegate runs the same way on either."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from sluicegate.naming import CLICKHOUSE_DATABASE

# join_use_nulls: a point-in-time join that misses must give NULL, never 0 or 1970-01-01.
BASE_SETTINGS: dict[str, Any] = {"join_use_nulls": 1}


def client_kwargs(clickhouse_url: str | None, data_dir: Path) -> dict[str, Any]:
    """clickhouse-connect ``get_client`` arguments for a server URL, or for chDB under
    ``data_dir/chdb`` when no URL is given."""
    if not clickhouse_url:
        path = (data_dir / "chdb").resolve()
        path.mkdir(parents=True, exist_ok=True)
        return {"interface": "chdb", "path": str(path)}
    url = urlparse(clickhouse_url)
    secure = url.scheme == "https"
    return {
        "host": url.hostname or "localhost",
        "port": url.port or (8443 if secure else 8123),
        "username": unquote(url.username or "default"),
        "password": unquote(url.password or ""),
        "secure": secure,
    }


def connect(
    clickhouse_url: str | None, data_dir: Path, *, database: str = CLICKHOUSE_DATABASE
) -> Client:
    """A clickhouse-connect client on ``database``, created when missing.

    chDB allows one process per data directory, so in embedded mode only the process that
    owns the store (``sluicegate serve``) calls this.
    """
    kwargs = client_kwargs(clickhouse_url, data_dir)
    bootstrap = clickhouse_connect.get_client(settings=BASE_SETTINGS, **kwargs)
    bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    bootstrap.close()
    return clickhouse_connect.get_client(database=database, settings=BASE_SETTINGS, **kwargs)
