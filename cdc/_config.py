"""The declarative description of one source database (one YAML file per database).

A file names the database, the team that owns its subjects, how to reach it (the password
only through an environment variable), the tables to capture and, per table, the key
columns, excluded columns, subject, compatibility level and what to do with a change that
level refuses. Everything is validated (unknown keys refused) before anything is applied.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sluicegate.errors import InvalidCdcConfig
from sluicegate.naming import cdc_subject, is_valid_subject
from sluicegate.violations import violations as as_violations

__all__ = [
    "COMMIT_TIME_FIELD",
    "ConnectionConfig",
    "DatabaseConfig",
    "IncompatiblePolicy",
    "TableConfig",
    "load_config",
    "load_configs",
    "parse_config",
    "resolve_config",
]

# Lower-case, starts with a letter: the name ends up in subjects, topic names, the connector
# name and PostgreSQL slot/publication names (which allow only [a-z0-9_], 63 bytes).
_NAME_RE = r"^[a-z][a-z0-9_]{0,39}$"
_IDENT_RE = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
_TABLE_RE = re.compile(
    r"^(?:(?P<schema>[A-Za-z_][A-Za-z0-9_]{0,62})\.)?(?P<table>[A-Za-z_][A-Za-z0-9_]{0,62})$"
)

Identifier = Annotated[str, Field(pattern=_IDENT_RE)]
Level = Literal[
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
]
SnapshotMode = Literal["initial", "no_data", "when_needed", "always", "initial_only"]

# The payload field holding the change's commit time (the subject's event-time field).
COMMIT_TIME_FIELD = "_committed_at"


class IncompatiblePolicy(StrEnum):
    """What the bridge does with a row whose new shape the table's level refuses."""

    STOP = "stop"  # hold the table's rows (nothing lost) until the owner resolves it
    MIGRATE = "migrate"  # register the new version with a generated migration rule


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConnectionConfig(_Strict):
    """How to reach the source PostgreSQL. The password is never in the file."""

    host: str = Field(min_length=1)
    port: int = Field(5432, ge=1, le=65535)
    dbname: str = Field(min_length=1)
    user: str = Field(min_length=1)
    password_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable holding the password (unset: no password).",
    )
    connect_timeout_s: int = Field(5, ge=1, le=120)

    def password(self, environ: Mapping[str, str]) -> str | None:
        """The password from ``environ``; InvalidCdcConfig naming the variable if it is unset."""
        if self.password_env is None:
            return None
        value = environ.get(self.password_env)
        if value is None:
            raise InvalidCdcConfig(
                f"connection.password_env: environment variable {self.password_env} is not set",
                violations=[
                    {
                        "path": "connection.password_env",
                        "rule": "env_set",
                        "message": f"environment variable {self.password_env} is not set",
                    }
                ],
            )
        return value


class TableConfig(_Strict):
    """One captured table."""

    name: str = Field(description="`schema.table` or `table` (schema public).")
    key_columns: list[Identifier] = Field(
        default_factory=list,
        description="The entity key for a table without a primary key (overrides the primary key).",
    )
    exclude_columns: list[Identifier] = Field(
        default_factory=list, description="Columns never captured (PII)."
    )
    subject: str | None = Field(None, description="Subject name; default cdc.<database>.<table>.")
    compatibility: Level | None = Field(None, description="Overrides the database's level.")
    on_incompatible: IncompatiblePolicy | None = Field(
        None, description="Overrides the database's policy."
    )

    @field_validator("name")
    @classmethod
    def _qualified(cls, value: str) -> str:
        m = _TABLE_RE.match(value)
        if not m:
            raise ValueError("must be `schema.table` or `table` (letters, digits, underscores)")
        return f"{m['schema'] or 'public'}.{m['table']}"

    @field_validator("subject")
    @classmethod
    def _valid_subject(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_subject(value):
            raise ValueError("must be a valid subject name (letters, digits, '.', '_', '-')")
        return value

    @model_validator(mode="after")
    def _key_not_excluded(self) -> TableConfig:
        clash = sorted(set(self.key_columns) & set(self.exclude_columns))
        if clash:
            raise ValueError(f"key columns cannot be excluded: {', '.join(clash)}")
        return self

    @property
    def schema_name(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def table_name(self) -> str:
        return self.name.split(".", 1)[1]


class DatabaseConfig(_Strict):
    """One source database and everything captured from it."""

    name: str = Field(pattern=_NAME_RE, description="Logical name: subjects cdc.<name>.<table>.")
    team: str = Field(min_length=1, pattern=r"^[^:\s][^:]*$", description="Owner of the subjects.")
    connection: ConnectionConfig
    tables: list[TableConfig] = Field(min_length=1)
    snapshot_mode: SnapshotMode = "initial"
    compatibility: Level | None = Field(
        None, description="Level for every table's subject (unset: the registry's default)."
    )
    on_incompatible: IncompatiblePolicy = IncompatiblePolicy.STOP
    heartbeat_interval_ms: int = Field(10_000, ge=1_000)
    replica_identity_full: bool = Field(
        True,
        description="Let the connector set REPLICA IDENTITY FULL on captured tables, so "
        "updates and deletes carry whole before-images.",
    )
    slot_name: str | None = Field(None, pattern=r"^[a-z0-9_]{1,63}$")
    publication_name: str | None = Field(None, pattern=r"^[a-z0-9_]{1,63}$")
    poll_interval_ms: int = Field(20, ge=10, le=10_000)
    max_batch_size: int = Field(
        8192,
        ge=256,
        le=65_536,
        description="Most changes Debezium hands Connect per poll (its queue holds 4x).",
    )

    @model_validator(mode="after")
    def _unique_tables(self) -> DatabaseConfig:
        seen: set[str] = set()
        for i, t in enumerate(self.tables):
            if t.name in seen:
                raise ValueError(f"tables[{i}].name: {t.name} is listed twice")
            seen.add(t.name)
        subjects = [self.subject_of(t) for t in self.tables]
        dupes = sorted({s for s in subjects if subjects.count(s) > 1})
        if dupes:
            raise ValueError(f"two tables map to the same subject: {', '.join(dupes)}")
        return self

    def password(self, environ: Mapping[str, str]) -> str | None:
        """The connection password from ``environ`` (InvalidCdcConfig naming this database
        and the variable when it is unset)."""
        try:
            return self.connection.password(environ)
        except InvalidCdcConfig as exc:
            raise InvalidCdcConfig(f"{self.name}: {exc.message}", **exc.details) from None

    # ------------------------------------------------------------------ derived names
    @property
    def connector_name(self) -> str:
        return f"sluicegate-{self.name}"

    @property
    def slot(self) -> str:
        return self.slot_name or f"sluicegate_{self.name}"

    @property
    def publication(self) -> str:
        return self.publication_name or f"sluicegate_{self.name}"

    @property
    def topic_prefix(self) -> str:
        """Debezium's ``topic.prefix``: raw change topics are ``<prefix>.<schema>.<table>``.
        Deliberately not under the governed ``sg.`` namespace."""
        return f"cdcraw.{self.name}"

    def raw_topic(self, table: TableConfig) -> str:
        return f"{self.topic_prefix}.{table.name}"

    def subject_of(self, table: TableConfig) -> str:
        if table.subject:
            return table.subject
        short = table.table_name if table.schema_name == "public" else table.name
        return cdc_subject(self.name, short)

    def compatibility_of(self, table: TableConfig) -> str | None:
        return table.compatibility or self.compatibility

    def policy_of(self, table: TableConfig) -> IncompatiblePolicy:
        return table.on_incompatible or self.on_incompatible

    def table(self, qualified: str) -> TableConfig:
        for t in self.tables:
            if t.name == qualified:
                return t
        raise KeyError(qualified)


def parse_config(document: Any, *, source: str = "<config>") -> DatabaseConfig:
    """Validate a parsed document; InvalidCdcConfig lists every violation by field path."""
    if not isinstance(document, dict):
        raise InvalidCdcConfig(
            f"{source}: a database config must be a mapping, got {type(document).__name__}",
            violations=[{"path": "", "rule": "type", "message": "must be a mapping"}],
        )
    try:
        return DatabaseConfig.model_validate(document)
    except ValidationError as exc:
        violations = as_violations(exc.errors())
        lines = "; ".join(
            f"{v['path']}: {v['message']}" if v["path"] else v["message"] for v in violations
        )
        raise InvalidCdcConfig(f"{source}: {lines}", violations=violations) from None


def load_config(path: Path) -> DatabaseConfig:
    """Read and validate one YAML file."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidCdcConfig(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise InvalidCdcConfig(f"{path}: not valid YAML: {exc}") from exc
    return parse_config(document, source=str(path))


def load_configs(directory: Path) -> list[DatabaseConfig]:
    """Every ``*.yaml``/``*.yml`` file of ``directory``, validated; names must be unique."""
    if not directory.is_dir():
        raise InvalidCdcConfig(f"{directory}: not a directory of database configs")
    configs: list[DatabaseConfig] = []
    where: dict[str, Path] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        cfg = load_config(path)
        if cfg.name in where:
            raise InvalidCdcConfig(f"{path}: name {cfg.name!r} is also used by {where[cfg.name]}")
        where[cfg.name] = path
        configs.append(cfg)
    return configs


def resolve_config(name_or_path: str, directory: Path | None) -> DatabaseConfig:
    """A config by file path, or by database name within ``directory``."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        return load_config(candidate)
    if directory is None:
        raise InvalidCdcConfig(
            f"no database config named {name_or_path!r}: give a path to its YAML file or set "
            "SLUICEGATE_CDC_CONFIG_DIR"
        )
    for cfg in load_configs(directory):
        if cfg.name == name_or_path:
            return cfg
    raise InvalidCdcConfig(f"no database config named {name_or_path!r} in {directory}")
