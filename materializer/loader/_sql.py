"""Read-only SQL over the store, run by the process that owns it (``/v1/sql``).

Every query first passes the SQL gate (``sluicegate/sqlgate.py``). The sessions it runs
on are read-only for their whole life (``readonly = 1``; on chDB set once on each
session's own connection, so a query cannot lift it), carry the time, memory and row
limits, and read with ``final = 1``, so queries see ``events`` exactly once even before
ClickHouse merged away a duplicate.
"""

from __future__ import annotations

import base64
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Any
from uuid import UUID

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from sluicegate.errors import (
    BadRequest,
    Forbidden,
    SluicegateError,
    StoreUnavailable,
    TooManyRequests,
)
from sluicegate.sqlgate import FunctionAllowlist, check_query

_READONLY_CODE = 164
_TIMEOUT_CODE = 159
_MEMORY_CODE = 241
_TOO_MANY_ROWS_CODE = 396
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
    """Runs caller queries through the SQL gate on a small pool of read-only sessions.

    Each query holds one session for its whole run, so answers never cross between
    callers; one team may hold at most all but one session, so another team always gets
    one (429 beyond that share, 503 when the whole pool stays busy).
    """

    def __init__(
        self,
        clients: Sequence[Client],
        allowlist: FunctionAllowlist,
        *,
        max_execution_s: int,
        wait_s: float = 5.0,
    ) -> None:
        if len(clients) < 2:
            raise ValueError("ReadOnlySql needs at least two sessions")
        self._pool: queue.Queue[Client] = queue.Queue()
        for client in clients:
            self._pool.put(client)
        self._allow = allowlist
        self._max_execution_s = max_execution_s
        self._wait_s = wait_s
        self._share = len(clients) - 1
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def _session(self, team: str) -> Iterator[Client]:
        with self._lock:
            if self._running.get(team, 0) >= self._share:
                raise TooManyRequests(
                    f"team {team!r} already runs {self._share} queries; wait for one to finish",
                    retry_after=1,
                )
            self._running[team] = self._running.get(team, 0) + 1
        try:
            try:
                client = self._pool.get(timeout=self._wait_s)
            except queue.Empty:
                raise StoreUnavailable(
                    "every SQL session is busy; retry shortly", retry_after=1
                ) from None
            try:
                yield client
            finally:
                self._pool.put(client)
        finally:
            with self._lock:
                self._running[team] -= 1

    def run(self, query: str, team: str = "anonymous", *, admin: bool = False) -> SqlResult:
        """Run caller ``query`` for ``team``: refused by the gate (400 naming the construct),
        a ClickHouse complaint or a limit is a :class:`BadRequest`, an unreachable store
        :class:`StoreUnavailable`."""
        text = check_query(query, self._allow, admin=admin)
        started = time.perf_counter()
        with self._session(team) as client:
            try:
                result = client.query(text)
            except OperationalError as exc:
                raise StoreUnavailable("ClickHouse is not reachable") from exc
            except DatabaseError as exc:
                raise self._refusal(exc) from exc
        if len(result.result_rows) > MAX_RESULT_ROWS:  # one block can pass max_result_rows
            raise BadRequest(
                f"query: returns more than {MAX_RESULT_ROWS} rows; add a LIMIT or aggregate"
            )
        return SqlResult(
            columns=list(result.column_names),
            types=[t.name for t in result.column_types],
            rows=[[json_value(v) for v in row] for row in result.result_rows],
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    def _refusal(self, exc: DatabaseError) -> SluicegateError:
        code = getattr(exc, "code", None)
        message = str(exc).split("\n", 1)[0]
        if code == _READONLY_CODE:
            return Forbidden("query: read-only SQL only")
        if code == _TIMEOUT_CODE:
            return BadRequest(
                f"query: ran longer than {self._max_execution_s} s "
                "(max_execution_time); narrow it or aggregate"
            )
        if code == _MEMORY_CODE:
            return BadRequest(
                "query: needs more memory than one query may use "
                "(max_memory_usage); narrow it or aggregate"
            )
        if code == _TOO_MANY_ROWS_CODE:
            return BadRequest(
                f"query: returns more than {MAX_RESULT_ROWS} rows; add a LIMIT or aggregate"
            )
        return BadRequest(f"query: {message}")
