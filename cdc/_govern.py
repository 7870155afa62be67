"""Schema governance of one captured table: which registered version a row is written
with, registering a new version when the table's shape changes, and holding the table
when its compatibility level refuses the change.

A row that fits the current version goes straight through. Otherwise the table's earlier
versions are tried (rows written before a change can still be in flight), then the new
shape is registered through the registry's compatibility check. A refused change follows
the table's policy: ``stop`` holds the table with the refusal as its visible error until
the owner relaxes the level or registers the version (with a migration rule) themselves;
``migrate`` registers it with a generated rule (drops, casts, constant defaults) when one
exists, and holds the table otherwise. A held table's rows are never skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cdc._catalog import TableInfo
from cdc._config import COMMIT_TIME_FIELD, DatabaseConfig, IncompatiblePolicy, TableConfig
from cdc._shape import Shape, fits, infer_shape, json_schema, schema_text, shape_from_schema
from registry import (
    Compatibility,
    Principal,
    RegisteredSchema,
    RegisterResult,
    Registry,
    SchemaType,
    SubjectMetadata,
)
from sluicegate.errors import (
    Forbidden,
    IncompatibleSchema,
    InvalidMigration,
    SluicegateError,
    SubjectNotFound,
    Unprocessable,
    VersionNotFound,
)

__all__ = ["TableGovernor", "TableHeld", "migration_between"]

log = logging.getLogger("sluicegate.cdc")

# A held table retries at most this often (the owner's fix is picked up within it).
RETRY_INTERVAL_S = 2.0
# The catalog is read again at most this often per table when rows stop fitting.
DESCRIBE_INTERVAL_S = 0.5

_CAST_TO = {"string": "string", "integer": "long", "number": "double", "boolean": "boolean"}


class TableHeld(Exception):
    """The table is stopped: its current row must not be written (nor any after it)."""


def migration_between(old: Shape, new: Shape) -> list[dict[str, Any]]:
    """Operations turning a row of ``old`` into one of ``new``: drop removed columns, add
    new ones (null, or the column's constant default), cast retyped ones. Raises
    InvalidMigration naming the column when no faithful rule exists (a new NOT NULL
    column without a constant default would need an invented value)."""
    before = {c.name: c for c in old.columns}
    after = {c.name: c for c in new.columns}
    ops: list[dict[str, Any]] = [{"op": "drop", "field": n} for n in before if n not in after]
    for name, col in after.items():
        if name not in before:
            if col.default is not None:
                ops.append({"op": "add", "field": name, "default": col.default})
            elif col.nullable:
                ops.append({"op": "add", "field": name, "default": None})
            else:
                raise InvalidMigration(
                    f"column {name!r} is NOT NULL without a constant default: old rows have "
                    "no value for it"
                )
            continue
        was = before[name]
        if was.json_type != col.json_type:
            target = _CAST_TO.get(col.json_type or "")
            if target is None or was.json_type is None:
                raise InvalidMigration(
                    f"column {name!r} changed from {was.json_type} to {col.json_type}: no cast"
                )
            ops.append({"op": "cast", "field": name, "to": target})
    if not ops:
        raise InvalidMigration("no column changed in a way a migration rule can express")
    return ops


@dataclass
class _Version:
    schema: RegisteredSchema
    shape: Shape | None


class TableGovernor:
    """The registered versions of one table's subject and the table's hold state."""

    def __init__(
        self,
        db: DatabaseConfig,
        table: TableConfig,
        registry: Registry,
        describe: Callable[[], TableInfo | None],
    ) -> None:
        self.db = db
        self.table = table
        self.subject = db.subject_of(table)
        self.policy = db.policy_of(table)
        self._registry = registry
        self._describe = describe
        self._principal = Principal(team=db.team)
        self._lock = threading.Lock()
        self._versions: list[_Version] = []
        self._current: _Version | None = None
        self._catalog: TableInfo | None = None
        self._catalog_at = 0.0
        self.key_names: list[str] = list(table.key_columns)
        # hold state
        self.error: str | None = None
        self.held_since: float | None = None
        self.pending_schema: str | None = None
        self._held_row: dict[str, Any] | None = None
        self._held_shape: Shape | None = None
        self._next_retry = 0.0
        self._stuck = False  # held on a record no schema change can explain
        # a hold recorded in Kafka by an earlier process, shown until this one reads the
        # table's next change (and holds it again or goes on)
        self.remembered: tuple[float, str] | None = None
        self.started = False  # the committed offsets (and any hold they record) were read
        self.versions_registered = 0

    # ------------------------------------------------------------------ state
    @property
    def held(self) -> bool:
        return self.held_since is not None

    def status(self) -> dict[str, Any]:
        current = self._current.schema if self._current else None
        since, error = self.held_since, self.error
        if not self.held and self.remembered is not None:
            since, error = self.remembered
        return {
            "table": self.table.name,
            "subject": self.subject,
            "state": (
                "stopped" if since is not None else "running" if self.started else "starting"
            ),
            "error": error,
            "held_since": since,
            "policy": self.policy.value,
            "schema_version": current.version if current else None,
            "schema_id": current.id if current else None,
            "pending_schema": self.pending_schema,
            "key": self.key_names,
        }

    def catalog(self, *, refresh: bool = False) -> TableInfo | None:
        """The table's catalog entry, read again when asked (rate limited)."""
        now = time.monotonic()
        if self._catalog is None or (refresh and now - self._catalog_at >= DESCRIBE_INTERVAL_S):
            try:
                info = self._describe()
            except SluicegateError as exc:
                log.warning("catalog of %s unavailable: %s", self.table.name, exc.message)
                info = None
            self._catalog_at = now
            if info is not None:
                self._catalog = info
                if not self.table.key_columns and info.primary_key:
                    self.key_names = list(info.primary_key)
        return self._catalog

    @property
    def full_identity(self) -> bool:
        """Whether deletes carry whole before-images (REPLICA IDENTITY FULL)."""
        info = self.catalog()
        return info.full_identity if info is not None else self.db.replica_identity_full

    # ------------------------------------------------------------------ versions
    def _load_versions(self) -> None:
        try:
            latest = self._registry.latest(self.subject).version
        except SubjectNotFound:
            self._versions = []
            return
        out = []
        for n in range(1, latest + 1):
            try:
                schema = self._registry.version(self.subject, n)
            except VersionNotFound:
                continue
            parsed = schema.parsed if isinstance(schema.parsed, dict) else None
            shape = (
                shape_from_schema(parsed, commit_time_field=COMMIT_TIME_FIELD) if parsed else None
            )
            out.append(_Version(schema, shape))
        self._versions = out

    def _fitting(self, row: dict[str, Any] | None) -> _Version | None:
        for v in reversed(self._versions):
            if v.shape is not None and (row is None or fits(v.shape, row)):
                return v
        return None

    def schema_for(
        self, row: dict[str, Any] | None, key: list[str] | None = None
    ) -> RegisteredSchema:
        """The version ``row`` is written with (``row`` None: a truncate or a key-only
        delete, written with the current version). Raises TableHeld."""
        if key and not self.table.key_columns and key != self.key_names:
            self.key_names = list(key)
        cur = self._current
        if cur is not None and (row is None or (cur.shape is not None and fits(cur.shape, row))):
            return cur.schema
        with self._lock:
            if self.held:
                raise TableHeld(self.error)
            if not self._versions:
                self._load_versions()
            found = self._fitting(row)
            if found is None:
                self._load_versions()  # the owner may have registered one meanwhile
                found = self._fitting(row)
            if found is None:
                shape = self._infer(row)
                found = self._register(shape, row)
            self._current = found
            return found.schema

    def _infer(self, row: dict[str, Any] | None) -> Shape:
        info = self.catalog(refresh=True)
        if row is None and info is None:
            raise self._hold(
                row,
                None,
                "the table has no registered version yet and its catalog "
                "is unreachable (set the password variable for the bridge)",
            )
        catalog = info.columns if info is not None else None
        return infer_shape(row, catalog, key=self.key_names, excluded=self.table.exclude_columns)

    def _metadata(self) -> SubjectMetadata:
        return SubjectMetadata(
            subject=self.subject,
            owner=self.db.team,
            entity_key=list(self.key_names),
            event_time=COMMIT_TIME_FIELD,
            description=(
                f"Rows of {self.table.name} in database {self.db.name} (change data capture)."
            ),
            tags=["cdc", f"database:{self.db.name}"],
        )

    def _register(self, shape: Shape, row: dict[str, Any] | None) -> _Version:
        document = json_schema(shape, title=self.subject, commit_time_field=COMMIT_TIME_FIELD)
        text = schema_text(document)
        first = not self._versions
        try:
            if first:
                self._set_level()
            result = self._registry.register(
                self.subject,
                text,
                SchemaType.JSON,
                principal=self._principal,
                metadata=self._metadata() if first else None,
            )
        except IncompatibleSchema as exc:
            result = self._on_incompatible(shape, text, row, exc)
        except (Forbidden, Unprocessable) as exc:
            raise self._hold(row, shape, f"cannot register version: {exc.message}", text) from exc
        schema = self._registry.version(self.subject, result.version)
        if result.created:
            self.versions_registered += 1
            log.info(
                "cdc %s: registered %s version %d", self.table.name, self.subject, result.version
            )
        version = _Version(schema, shape)
        self._versions = [v for v in self._versions if v.schema.version != result.version]
        self._versions.append(version)
        self._versions.sort(key=lambda v: v.schema.version)
        return version

    def _set_level(self) -> None:
        level = self.db.compatibility_of(self.table)
        if level is None:
            return
        try:
            own = self._registry.subject_compatibility(self.subject)
        except SubjectNotFound:
            own = None
        if own is None:
            self._registry.set_subject_compatibility(
                self.subject, Compatibility(level), principal=self._principal
            )

    def _on_incompatible(
        self, shape: Shape, text: str, row: dict[str, Any] | None, exc: IncompatibleSchema
    ) -> RegisterResult:
        reason = "; ".join(exc.details.get("messages") or []) or exc.message
        if self.policy is IncompatiblePolicy.MIGRATE and self._versions:
            previous = self._versions[-1]
            try:
                if previous.shape is None:
                    raise InvalidMigration(
                        f"version {previous.schema.version} was not written by the bridge"
                    )
                ops = migration_between(previous.shape, shape)
                return self._registry.register(
                    self.subject, text, SchemaType.JSON, principal=self._principal, migration=ops
                )
            except (InvalidMigration, IncompatibleSchema, Forbidden, Unprocessable) as mexc:
                reason = f"{reason}; no migration rule: {mexc.message}"
        error = f"incompatible change refused ({self._level_name()}): {reason}"
        raise self._hold(row, shape, error, text) from exc

    def _level_name(self) -> str:
        try:
            return self._registry.compatibility(self.subject).value
        except SluicegateError:
            return "level unknown"

    def _hold(
        self, row: dict[str, Any] | None, shape: Shape | None, error: str, schema: str | None = None
    ) -> TableHeld:
        """Hold the table with ``error``; returns the exception to raise."""
        if error != self.error:
            log.warning("cdc %s stopped: %s", self.table.name, error)
        if not self.held:
            self.held_since = self._since()
        self.error = error
        self.pending_schema = schema
        self._held_row = row
        self._held_shape = shape
        self._next_retry = time.monotonic() + RETRY_INTERVAL_S
        return TableHeld(error)

    def _since(self) -> float:
        """When the hold began: an earlier process's hold of the same row goes on."""
        since = self.remembered[0] if self.remembered is not None else time.time()
        self.remembered = None
        return since

    def hold_undecodable(self, error: str) -> None:
        """Hold the table on a record that is not a Debezium change event: it is never
        skipped by itself (an operator moves the consumer group past it)."""
        if not self.held:
            log.error("cdc %s stopped: %s", self.table.name, error)
            self.held_since = self._since()
        self.error = error
        self._stuck = True

    # ------------------------------------------------------------------ release
    def try_release(self) -> bool:
        """Retry a held table (rate limited): True once its held row has a version, i.e.
        the owner relaxed the level or registered a version that fits it."""
        if not self.held or self._stuck or time.monotonic() < self._next_retry:
            return False
        with self._lock:
            row, shape = self._held_row, self._held_shape
            since, error, pending = self.held_since, self.error, self.pending_schema
            self.held_since = None
            try:
                self._load_versions()
                found = self._fitting(row)
                if found is None:
                    found = self._register(shape if shape is not None else self._infer(row), row)
            except TableHeld:
                self.held_since = since
                return False
            except SluicegateError as exc:
                self.held_since = since
                self.error = f"{error} (retry failed: {exc.message})"
                self.pending_schema = pending
                self._next_retry = time.monotonic() + RETRY_INTERVAL_S
                return False
            self._current = found
            self.error = self.pending_schema = None
            self._held_row = self._held_shape = None
            log.info(
                "cdc %s resumed with %s version %d",
                self.table.name,
                self.subject,
                found.schema.version,
            )
            return True
