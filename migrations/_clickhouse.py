"""Numbered, checksummed ClickHouse DDL: ``migrations/clickhouse/NNNN_name.sql``.

Each file is applied once, in name order, and recorded with its SHA-256 in
``schema_migrations``. A recorded file whose text changed afterwards stops the run with an
error naming it (write a new numbered file instead); applying again is a no-op. The same
code runs on chDB and on a ClickHouse server, since both go through clickhouse-connect.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from sluicegate.errors import MigrationFailed, StoreUnavailable

MIGRATIONS_TABLE = "schema_migrations"
_FILE_RE = re.compile(r"^\d{4}_[a-z0-9_]+\.sql$")
_STATEMENT_END = re.compile(r";[ \t]*(?:\n|$)")

_CREATE_MIGRATIONS_TABLE = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}
(
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY name
"""


@dataclass(frozen=True)
class Migration:
    """One numbered DDL file."""

    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        """The file's statements: ``--`` comment lines dropped, split at a ``;`` ending a line."""
        text = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        return [part.strip() for part in _STATEMENT_END.split(text) if part.strip()]


def clickhouse_migrations(directory: Path | Traversable | None = None) -> list[Migration]:
    """The DDL files in name order: those shipped with the package unless ``directory``
    is given. A file not named ``NNNN_name.sql`` is an error naming it."""
    root: Path | Traversable = (
        directory if directory is not None else resources.files("migrations") / "clickhouse"
    )
    found: list[Migration] = []
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        if not _FILE_RE.match(entry.name):
            raise MigrationFailed(
                f"{entry.name}: a migration file must be named NNNN_name.sql "
                "(four digits, lower-case letters, digits and underscores)",
                file=entry.name,
            )
        found.append(Migration(entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.name)


def apply_clickhouse_migrations(
    client: Client, migrations: list[Migration] | None = None
) -> list[str]:
    """Apply the pending migrations on ``client``'s database; return the names applied
    (empty when everything was already applied).

    Raises :class:`MigrationFailed` naming the file when an applied file was edited or a
    statement fails, and :class:`StoreUnavailable` when ClickHouse cannot be reached.
    """
    todo = clickhouse_migrations() if migrations is None else migrations
    try:
        client.command(_CREATE_MIGRATIONS_TABLE)
        rows = client.query(
            f"SELECT name, any(checksum) FROM {MIGRATIONS_TABLE} GROUP BY name"
        ).result_rows
        applied: dict[str, str] = {str(name): str(checksum) for name, checksum in rows}
    except ClickHouseError as exc:
        raise StoreUnavailable(f"ClickHouse is not available for migrations: {exc}") from exc
    done: list[str] = []
    for migration in todo:
        recorded = applied.get(migration.name)
        if recorded is not None:
            if recorded != migration.checksum:
                raise MigrationFailed(
                    f"{migration.name}: the file changed after it was applied (checksum "
                    f"{migration.checksum[:12]} != recorded {recorded[:12]}); never edit an "
                    "applied migration, add a new numbered file instead",
                    file=migration.name,
                )
            continue
        for statement in migration.statements():
            try:
                client.command(statement)
            except ClickHouseError as exc:
                raise MigrationFailed(f"{migration.name}: {exc}", file=migration.name) from exc
        client.insert(
            MIGRATIONS_TABLE,
            [[migration.name, migration.checksum, datetime.now(UTC)]],
            column_names=["name", "checksum", "applied_at"],
        )
        done.append(migration.name)
    return done
