"""The ClickHouse client factory: chDB embedded under the data directory by default, a
ClickHouse server when a URL is given. Both go through clickhouse-connect, so every query
in Sluicegate runs the same way on either."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from sluicegate.naming import CLICKHOUSE_DATABASE

# join_use_nulls: a point-in-time join that misses must give NULL, never 0 or 1970-01-01.
# deduplicate_blocks_in_dependent_materialized_views: a load replayed under the same
# insert_deduplication_token is dropped by `events`; this drops it in the feature tables the
# materialized views feed as well, so a replay is never counted twice there.
BASE_SETTINGS: dict[str, Any] = {
    "join_use_nulls": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
}


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


# Reads that see every table the way its engine means it (ReplacingMergeTree rows folded
# by key: `events` exactly once).
READ_SETTINGS: dict[str, Any] = {"final": 1}


def query_limits(max_execution_s: int, max_memory_bytes: int, max_rows: int) -> dict[str, Any]:
    """The limits every caller query runs under: time, memory, result rows, threads."""
    return {
        "max_execution_time": max_execution_s,
        "timeout_overflow_mode": "throw",
        "max_memory_usage": max_memory_bytes,
        "max_result_rows": max_rows,
        "result_overflow_mode": "throw",
        "max_threads": 2,
    }


def connect_readonly(
    clickhouse_url: str | None,
    data_dir: Path,
    limits: dict[str, Any],
    *,
    read_url: str | None = None,
    database: str = CLICKHOUSE_DATABASE,
) -> Client:
    """A client that can only read (``readonly = 1``) with :data:`READ_SETTINGS` and
    ``limits`` (see :func:`query_limits`).

    On chDB the settings are set once on the client's own connection, then ``readonly``
    last, so no query can change them back. On a server they travel with every query;
    with ``read_url`` (a user whose profile is ``readonly = 1``, which refuses any setting
    a query sends) the server's profile holds them instead (docs/security.md).
    """
    if read_url:
        return clickhouse_connect.get_client(database=database, **client_kwargs(read_url, data_dir))
    kwargs = client_kwargs(clickhouse_url, data_dir)
    wanted = {**BASE_SETTINGS, **READ_SETTINGS, **limits}
    if clickhouse_url:
        settings = {**wanted, "readonly": 1}
        return clickhouse_connect.get_client(database=database, settings=settings, **kwargs)
    client = clickhouse_connect.get_client(database=database, **kwargs)
    for name, value in {**wanted, "readonly": 1}.items():
        client.command(f"SET {name} = {value!r}")
    return client


_MESSAGE = re.compile(r"DB::Exception: (.*?)(?: \(([A-Z_]+)\))?(?:\. Stack trace|$)", re.S)


def error_message(exc: Exception) -> str:
    """ClickHouse's own message in an error (first line, no code, no stack trace)."""
    text = str(exc)
    m = _MESSAGE.search(text)
    return (m.group(1) if m else text).strip().splitlines()[0][:500]
