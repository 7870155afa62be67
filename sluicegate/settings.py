"""Typed settings, read from the environment (prefix ``SLUICEGATE_``) at entry points only.

Everything else receives a :class:`Settings` instance (or the values it needs) as an argument.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Role = Literal["all", "registry", "gateway", "materializer"]


class Settings(BaseSettings):
    """Every setting Sluicegate reads. ``docs/configuration.md`` documents each one."""

    model_config = SettingsConfigDict(env_prefix="SLUICEGATE_", extra="forbid")

    data_dir: Path = Field(
        Path(".sluicegate"), description="Run-time state: chDB data, SQLite registry."
    )
    host: str = Field("127.0.0.1", description="Address `sluicegate serve` listens on.")
    port: int = Field(8080, ge=1, le=65535, description="HTTP port of `sluicegate serve`.")
    server_url: str | None = Field(
        None,
        description="URL of a running `sluicegate serve` for CLI commands (default: host/port).",
    )
    kafka_bootstrap: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers.")
    connect_url: str = Field("http://127.0.0.1:18083", description="Kafka Connect REST URL.")
    clickhouse_url: str | None = Field(
        None,
        description="ClickHouse server URL (http://user:pass@host:8123); "
        "unset: chDB under DATA_DIR.",
    )
    clickhouse_read_url: str | None = Field(
        None,
        description="ClickHouse server URL of a read-only user (readonly=1, grants on database "
        "sluicegate only) that runs caller SQL; unset: CLICKHOUSE_URL. Ignored with chDB.",
    )
    sql_pool_size: int = Field(
        4, ge=2, le=64, description="Read-only ClickHouse sessions for caller SQL (/v1/sql)."
    )
    sql_max_execution_s: int = Field(
        30, gt=0, description="Longest a caller's SQL query may run (max_execution_time)."
    )
    sql_max_memory_bytes: int = Field(
        2 * 1024**3, gt=0, description="Most memory a caller's SQL query may use."
    )
    registry_db_url: str | None = Field(
        None, description="SQLAlchemy URL of the registry database; unset: SQLite under DATA_DIR."
    )
    admin_token: SecretStr | None = Field(None, description="Bootstrap admin token (team `admin`).")
    anonymous_read: bool = Field(False, description="Allow reads without a token.")
    max_body_bytes: int = Field(
        16 * 1024 * 1024, gt=0, description="Largest accepted request body."
    )
    topic_partitions: int = Field(
        4, ge=1, le=1000, description="Partitions of a governed topic Sluicegate creates."
    )
    max_batch_events: int = Field(10_000, gt=0, description="Most events in one batch request.")
    produce_timeout_s: float = Field(10.0, gt=0, description="Wait for Kafka acks before a 503.")
    role: Role = Field(
        "all", description="What `serve` runs: all, registry, gateway or materializer."
    )
    materialize_topics: str | None = Field(
        None,
        description="The governed topics the materializer loads: a topic name, or a pattern "
        "starting with ^ (librdkafka regex, no lookaround). Unset: every governed topic.",
    )
    cdc_config_dir: Path | None = Field(
        None,
        description="Directory of CDC database configs (one YAML file per database): "
        "`serve` bridges them, `sluicegate cdc` finds them by name. Unset: no CDC bridge.",
    )

    @property
    def registry_url(self) -> str:
        """The registry database URL, defaulting to a SQLite file in the data directory."""
        if self.registry_db_url:
            return self.registry_db_url
        return f"sqlite:///{(self.data_dir / 'registry.db').resolve()}"

    @property
    def base_url(self) -> str:
        """Where CLI commands reach the running server."""
        if self.server_url:
            return self.server_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"
