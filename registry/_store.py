"""The registry database: SQLAlchemy 2 Core tables (created by the Alembic migrations in
``migrations/registry``) and the few statements the registry runs against them.

SQLite (a file under the data directory) by default, PostgreSQL by URL. Every public
function maps SQLAlchemy errors to :class:`sluicegate.errors.StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from registry._types import Compatibility, SubjectMetadata
from sluicegate.errors import StoreUnavailable

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations" / "registry"
VERSION_TABLE = "registry_alembic_version"

metadata = MetaData()

schemas = Table(
    "schemas",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("schema_type", String(16), nullable=False),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("canonical", Text, nullable=False),
    Column("subject", String(255), nullable=False),  # first subject registered under
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

subjects = Table(
    "subjects",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("owner", String(255), nullable=True),
    Column("entity_key", Text, nullable=False, server_default="[]"),  # JSON list
    Column("event_time", String(255), nullable=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("tags", Text, nullable=False, server_default="[]"),  # JSON list
    Column("compatibility", String(32), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

versions = Table(
    "versions",
    metadata,
    Column("subject", String(255), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("schema_id", Integer, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("migration", Text, nullable=True),  # JSON list of ops from the previous version
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("team", String(255), nullable=False),
    Column("subjects", Text, nullable=True),
    Column("admin", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

config = Table(
    "config",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)


def _alembic_config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def open_engine(db_url: str) -> Engine:
    """An engine on ``db_url`` with the schema migrated to the newest revision."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if db_url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        path = db_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(db_url, **kwargs)
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "head")
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"registry database unavailable: {exc}") from exc
    return engine


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction whose database errors surface as StoreUnavailable."""
    try:
        with engine.begin() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"registry database error: {exc}") from exc


def set_config(conn: Connection, name: str, value: str) -> None:
    """Insert or update one ``config`` entry."""
    n = conn.execute(update(config).where(config.c.name == name).values(value=value)).rowcount
    if not n:
        conn.execute(insert(config).values(name=name, value=value))


def upsert_subject(conn: Connection, meta: SubjectMetadata, level: Compatibility | None) -> None:
    """Insert or update a subject's metadata and own compatibility level."""
    values = {
        "owner": meta.owner,
        "entity_key": orjson.dumps(meta.entity_key).decode(),
        "event_time": meta.event_time,
        "description": meta.description,
        "tags": orjson.dumps(meta.tags).decode(),
        "compatibility": level.value if level else None,
    }
    n = conn.execute(
        update(subjects).where(subjects.c.name == meta.subject).values(**values)
    ).rowcount
    if not n:
        conn.execute(insert(subjects).values(name=meta.subject, **values))


def schema_id(
    conn: Connection,
    *,
    fingerprint: str,
    schema_type: str,
    canonical: str,
    subject: str,
    version: int,
) -> int:
    """The id of the schema with ``fingerprint``, inserting it when new."""
    row = conn.execute(select(schemas.c.id).where(schemas.c.fingerprint == fingerprint)).first()
    if row is not None:
        return int(row.id)
    return int(
        conn.execute(
            insert(schemas)
            .values(
                schema_type=schema_type,
                fingerprint=fingerprint,
                canonical=canonical,
                subject=subject,
                version=version,
            )
            .returning(schemas.c.id)
        ).scalar_one()
    )


def insert_version(
    conn: Connection,
    subject: str,
    version: int,
    schema_id: int,
    migration: list[dict[str, Any]] | None,
) -> None:
    """Add a version row."""
    conn.execute(
        insert(versions).values(
            subject=subject,
            version=version,
            schema_id=schema_id,
            deleted=False,
            migration=orjson.dumps(migration).decode() if migration is not None else None,
        )
    )


def _versions_where(subject: str, version: int | None) -> Any:
    where = versions.c.subject == subject
    return where if version is None else where & (versions.c.version == version)


def soft_delete(conn: Connection, subject: str, version: int | None = None) -> None:
    """Mark one version (or all of a subject's) deleted."""
    conn.execute(update(versions).where(_versions_where(subject, version)).values(deleted=True))


def hard_delete(conn: Connection, subject: str, version: int | None = None) -> None:
    """Remove one version, or a whole subject with its metadata (schemas stay)."""
    conn.execute(delete(versions).where(_versions_where(subject, version)))
    if version is None:
        conn.execute(delete(subjects).where(subjects.c.name == subject))
