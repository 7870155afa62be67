"""Numbered, checksummed migrations: ClickHouse DDL in ``clickhouse/NNNN_name.sql``."""

from migrations._clickhouse import (
    MIGRATIONS_TABLE,
    Migration,
    apply_clickhouse_migrations,
    clickhouse_migrations,
)

__all__ = [
    "MIGRATIONS_TABLE",
    "Migration",
    "apply_clickhouse_migrations",
    "clickhouse_migrations",
]
