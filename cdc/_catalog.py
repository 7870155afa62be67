"""The source database side: a test connection with clear errors, the preflight checks of
`sluicegate cdc apply`, table descriptions from the catalog (for row shapes and keys), and
replication-slot housekeeping. psycopg errors are mapped here and never leak."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from cdc._config import COMMIT_TIME_FIELD, DatabaseConfig
from cdc._shape import CatalogColumn, json_type_of_pg
from sluicegate.errors import InvalidCdcConfig, Unavailable

__all__ = [
    "SlotInfo",
    "TableInfo",
    "describe_table",
    "drop_publication",
    "drop_slot",
    "open_source",
    "preflight",
    "slot_info",
]

_COLUMNS_SQL = """
SELECT a.attname, t.typname, t.typcategory, t.typtype, NOT a.attnotnull AS nullable,
       pg_get_expr(d.adbin, d.adrelid) AS default_expr
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %(rel)s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_PK_SQL = """
SELECT a.attname
FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = %(rel)s AND i.indisprimary
ORDER BY array_position(i.indkey::int2[], a.attnum)
"""

_REL_SQL = """
SELECT c.oid, c.relreplident, pg_get_userbyid(c.relowner) AS owner
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND c.relkind IN ('r', 'p')
"""


@dataclass(frozen=True)
class TableInfo:
    """What the catalog says about a captured table."""

    schema: str
    table: str
    columns: tuple[CatalogColumn, ...]
    primary_key: tuple[str, ...]
    replica_identity: str  # d(efault), f(ull), i(ndex), n(othing)
    owner: str

    @property
    def full_identity(self) -> bool:
        return self.replica_identity == "f"


def _describe_conn_error(cfg: DatabaseConfig, exc: psycopg.Error) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    c = cfg.connection
    return f"cannot connect to postgresql://{c.user}@{c.host}:{c.port}/{c.dbname}: {text}"


@contextmanager
def open_source(cfg: DatabaseConfig, password: str | None) -> Iterator[psycopg.Connection[Any]]:
    """A short-lived autocommit connection to the source database. A refused connection
    (host, port, database, user, password) is an InvalidCdcConfig naming the problem."""
    c = cfg.connection
    try:
        conn = psycopg.connect(
            host=c.host,
            port=c.port,
            dbname=c.dbname,
            user=c.user,
            password=password,
            connect_timeout=c.connect_timeout_s,
            autocommit=True,
            application_name="sluicegate-cdc",
        )
    except psycopg.OperationalError as exc:
        message = _describe_conn_error(cfg, exc)
        raise InvalidCdcConfig(
            f"{cfg.name}: connection: {message}",
            violations=[{"path": "connection", "rule": "reachable", "message": message}],
        ) from exc
    try:
        yield conn
    except psycopg.OperationalError as exc:
        raise Unavailable(f"{cfg.name}: lost the source database: {exc}") from exc
    finally:
        conn.close()


def describe_table(conn: psycopg.Connection[Any], schema: str, table: str) -> TableInfo | None:
    """The table's columns, primary key, replica identity and owner (None if absent)."""
    with conn.cursor() as cur:
        rel = cur.execute(_REL_SQL, {"schema": schema, "table": table}).fetchone()
        if rel is None:
            return None
        oid, replident, owner = rel
        cols = cur.execute(_COLUMNS_SQL, {"rel": oid}).fetchall()
        pk = [r[0] for r in cur.execute(_PK_SQL, {"rel": oid}).fetchall()]
    columns = tuple(
        CatalogColumn(name, typname, json_type_of_pg(typname, category, typtype), nullable, default)
        for name, typname, category, typtype, nullable, default in cols
    )
    return TableInfo(schema, table, columns, tuple(pk), str(replident), owner)


def preflight(cfg: DatabaseConfig, password: str | None) -> list[str]:
    """Check the source before the connector is created. Raises InvalidCdcConfig with
    every problem named (by config path); returns warnings that do not block."""
    problems: list[dict[str, str]] = []
    warnings: list[str] = []

    def problem(path: str, message: str) -> None:
        problems.append({"path": path, "rule": "source", "message": message})

    with open_source(cfg, password) as conn:
        with conn.cursor() as cur:
            row = cur.execute("SHOW wal_level").fetchone()
            wal_level = row[0] if row else "unknown"
            role = cur.execute(
                "SELECT rolreplication OR rolsuper, rolsuper FROM pg_roles "
                "WHERE rolname = current_user"
            ).fetchone()
        if wal_level != "logical":
            problem(
                "connection",
                f"wal_level is {wal_level!r}; logical decoding needs wal_level=logical",
            )
        can_replicate, superuser = role if role else (False, False)
        if not can_replicate:
            problem(
                "connection.user", f"role {cfg.connection.user!r} lacks the REPLICATION attribute"
            )
        for i, t in enumerate(cfg.tables):
            path = f"tables[{i}]"
            info = describe_table(conn, t.schema_name, t.table_name)
            if info is None:
                problem(
                    f"{path}.name",
                    f"table {t.name} does not exist in database {cfg.connection.dbname!r}",
                )
                continue
            names = {c.name for c in info.columns}
            for col in [*t.key_columns, *t.exclude_columns]:
                if col not in names:
                    problem(path, f"column {col!r} does not exist in {t.name}")
            if COMMIT_TIME_FIELD in names:
                problem(path, f"column name {COMMIT_TIME_FIELD!r} is reserved for the commit time")
            if not t.key_columns and not info.primary_key:
                problem(
                    f"{path}.key_columns",
                    f"{t.name} has no primary key: name its key columns in key_columns",
                )
            if not superuser and info.owner != cfg.connection.user:
                problem(
                    path,
                    f"{t.name} is owned by {info.owner!r}: the connector's filtered "
                    f"publication (and REPLICA IDENTITY FULL) need role "
                    f"{cfg.connection.user!r} to own it",
                )
            if not info.full_identity and not cfg.replica_identity_full:
                warnings.append(
                    f"{t.name}: REPLICA IDENTITY is not FULL, so updates carry no before-image "
                    "and deletes only the key; run ALTER TABLE ... REPLICA IDENTITY FULL or set "
                    "replica_identity_full: true"
                )
    if problems:
        lines = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
        raise InvalidCdcConfig(f"{cfg.name}: {lines}", violations=problems)
    return warnings


def ensure_full_replica_identity(cfg: DatabaseConfig, password: str | None) -> list[str]:
    """Set REPLICA IDENTITY FULL on the captured tables that lack it (when the config asks
    for it), before the connector starts: Debezium's own autoset runs only once streaming
    begins, so a delete right after the snapshot would otherwise carry only the key.
    Returns the tables changed."""
    if not cfg.replica_identity_full:
        return []
    changed = []
    with open_source(cfg, password) as conn:
        for t in cfg.tables:
            info = describe_table(conn, t.schema_name, t.table_name)
            if info is not None and not info.full_identity:
                conn.execute(
                    sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(
                        sql.Identifier(t.schema_name, t.table_name)
                    )
                )
                changed.append(t.name)
    return changed


@dataclass(frozen=True)
class SlotInfo:
    name: str
    active: bool
    retained_bytes: int | None


def slot_info(conn: psycopg.Connection[Any], slot: str) -> SlotInfo | None:
    row = conn.execute(
        "SELECT active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
        "FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    if row is None:
        return None
    return SlotInfo(slot, bool(row[0]), None if row[1] is None else int(row[1]))


def drop_slot(conn: psycopg.Connection[Any], slot: str, *, timeout_s: float = 30.0) -> bool:
    """Drop the replication slot once no connector holds it; False if there was none.
    An active slot cannot be dropped, so this waits for the connector to let go."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = slot_info(conn, slot)
        if info is None:
            return False
        if not info.active:
            try:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                return True
            except psycopg.errors.ObjectInUse:
                pass
        if time.monotonic() > deadline:
            raise Unavailable(f"replication slot {slot} is still in use after {timeout_s:.0f} s")
        time.sleep(0.5)


def drop_publication(conn: psycopg.Connection[Any], publication: str) -> None:
    conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication)))
