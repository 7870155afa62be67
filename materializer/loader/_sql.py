"""Read-only SQL over the store, run by the process that owns it (``/v1/sql``).

The client it runs on is read-only for its whole life (``readonly = 1``; on chDB set once
on its own connection, so a query cannot lift it) and reads with ``final = 1``, so
queries see ``events`` exactly once even before ClickHouse merged away a duplicate.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Any
from uuid import UUID

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from sluicegate.errors import BadRequest, Forbidden, StoreUnavailable

_READONLY_CODE = 164
MAX_RESULT_ROWS = 100_000


@dataclass(frozen=True)
class SqlResult:
    """Columns (name, ClickHouse type) and JSON-ready rows of a query."""

    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    elapsed_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "types": self.types,
            "rows": self.rows,
            "row_count": len(self.rows),
            "elapsed_ms": round(self.elapsed_ms, 3),
        }


def json_value(value: Any) -> Any:
    """A ClickHouse value as JSON: naive datetimes are UTC (the store's time zone)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        text = value.isoformat(timespec="milliseconds")
        return text + "Z" if value.tzinfo is None else text.replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID | IPv4Address | IPv6Address):
        return str(value)
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError:
            return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_value(v) for v in value]
    return str(value)


class ReadOnlySql:
    """Runs one read-only query at a time on a read-only client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def run(self, query: str) -> SqlResult:
        """Run ``query``; a ClickHouse complaint about it is a :class:`BadRequest` (a write
        is :class:`Forbidden`), an unreachable store :class:`StoreUnavailable`."""
        text = query.strip().rstrip(";").strip()
        if not text:
            raise BadRequest("query: must not be empty")
        started = time.perf_counter()
        try:
            result = self._client.query(text)
        except OperationalError as exc:
            raise StoreUnavailable(f"ClickHouse is not reachable: {exc}") from exc
        except DatabaseError as exc:
            message = str(exc).split("\n", 1)[0]
            if getattr(exc, "code", None) == _READONLY_CODE:
                raise Forbidden(f"query: read-only SQL only ({message})") from exc
            raise BadRequest(f"query: {message}") from exc
        if len(result.result_rows) > MAX_RESULT_ROWS:
            raise BadRequest(
                f"query: {len(result.result_rows)} rows is more than {MAX_RESULT_ROWS}; "
                "add a LIMIT or aggregate"
            )
        return SqlResult(
            columns=list(result.column_names),
            types=[t.name for t in result.column_types],
            rows=[[json_value(v) for v in row] for row in result.result_rows],
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )
