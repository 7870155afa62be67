"""The registry's in-memory copy of its database: parsed schemas by id and fingerprint,
subjects with their versions, the global level, and what is derived from them (upcast
steps, read plans). Lookups by id never touch the database; a subject older than
``refresh_seconds`` is re-read, so processes sharing a database see each other's changes."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from sqlalchemy import Engine, select

from registry import _store
from registry._model import SubjectState, VersionState, fingerprint
from registry._readplan import ReadPlan
from registry._schemas import ParsedSchema, parse
from registry._types import Compatibility, RegisteredSchema, SchemaType, SubjectMetadata
from registry._upcast import Step
from sluicegate.errors import SchemaNotFound, SubjectNotFound

__all__ = ["DEFAULT_COMPATIBILITY", "Mirror"]

DEFAULT_COMPATIBILITY = Compatibility.BACKWARD
_MAX_ID = 2**31 - 1  # the wire format carries a signed 32-bit id


class Mirror:
    """What the registry database holds, in memory (see the module docstring). Writers
    hold :attr:`lock` while they change the database and then this copy."""

    def __init__(self, engine: Engine, lock: threading.RLock, refresh_seconds: float) -> None:
        self._engine = engine
        self.lock = lock
        self._refresh_s = refresh_seconds
        self.parsed: dict[int, ParsedSchema] = {}
        self.by_id: dict[int, RegisteredSchema] = {}
        self.by_fp: dict[str, int] = {}
        self.subjects: dict[str, SubjectState] = {}
        self.global_level = DEFAULT_COMPATIBILITY
        self.upcasters: dict[tuple[str, int, int], list[Step]] = {}
        self.read_plans: dict[str, dict[int, ReadPlan]] = {}
        self._views: dict[tuple[str, int], RegisteredSchema] = {}

    def load(self) -> None:
        """Read every schema, subject, version and the global level."""
        with _store.transaction(self._engine) as conn:
            schema_rows = conn.execute(select(_store.schemas)).all()
            subject_rows = conn.execute(select(_store.subjects)).all()
            version_rows = conn.execute(select(_store.versions)).all()
            config_rows = conn.execute(select(_store.config)).all()
        for row in schema_rows:
            self.remember_schema(
                row.id, SchemaType(row.schema_type), row.canonical, row.subject, row.version
            )
        for row in subject_rows:
            self.subjects[row.name] = SubjectState.from_row(row)
        for row in version_rows:
            sub = self.subjects.setdefault(
                row.subject, SubjectState(row.subject, SubjectMetadata(row.subject))
            )
            sub.versions[row.version] = VersionState.from_row(row)
        for row in config_rows:
            if row.name == "compatibility":
                self.global_level = Compatibility(row.value)

    def remember_schema(
        self, schema_id: int, schema_type: SchemaType, canonical: str, subject: str, version: int
    ) -> ParsedSchema:
        parsed = parse(canonical, schema_type)
        self.remember_parsed(schema_id, parsed, schema_type, subject, version)
        return parsed

    def remember_parsed(
        self,
        schema_id: int,
        parsed: ParsedSchema,
        schema_type: SchemaType,
        subject: str,
        version: int,
    ) -> None:
        """Keep a schema the registry has just parsed (or read) under its id."""
        self.parsed[schema_id] = parsed
        self.by_fp[fingerprint(schema_type, parsed.canonical)] = schema_id
        self.by_id[schema_id] = RegisteredSchema(
            schema_id, subject, version, schema_type, parsed.canonical, parsed.parsed
        )

    def fresh(self, name: str) -> SubjectState | None:
        """The subject from memory, re-read from the database when unknown or older than
        ``refresh_seconds`` (other processes on the same database may have changed it)."""
        sub = self.subjects.get(name)
        if sub is None or not sub.versions or time.monotonic() - sub.loaded_at > self._refresh_s:
            return self._reload_subject(name)
        return sub

    def _reload_subject(self, name: str) -> SubjectState | None:
        """Re-read one subject from the database."""
        with self.lock, _store.transaction(self._engine) as conn:
            row = conn.execute(
                select(_store.subjects).where(_store.subjects.c.name == name)
            ).first()
            vrows = conn.execute(
                select(_store.versions).where(_store.versions.c.subject == name)
            ).all()
            missing = {r.schema_id for r in vrows} - self.by_id.keys()
            srows = (
                conn.execute(select(_store.schemas).where(_store.schemas.c.id.in_(missing))).all()
                if missing
                else []
            )
            for s in srows:
                self.remember_schema(
                    s.id, SchemaType(s.schema_type), s.canonical, s.subject, s.version
                )
            if row is None and not vrows:
                self.subjects.pop(name, None)
                return None
            sub = (
                SubjectState.from_row(row)
                if row is not None
                else SubjectState(name, SubjectMetadata(name))
            )
            for r in vrows:
                sub.versions[r.version] = VersionState.from_row(r)
            self.subjects[name] = sub
            self.forget_derived(name)
            return sub

    def forget_derived(self, subject: str) -> None:
        """Drop the upcast steps and read plans of ``subject`` (its versions changed)."""
        self.upcasters = {k: v for k, v in self.upcasters.items() if k[0] != subject}
        self.read_plans.pop(subject, None)

    def forget_views(self, subject: str, version: int | None = None) -> None:
        """Drop the per-version views of a permanently deleted subject (or version)."""
        if version is None:
            self._views = {k: v for k, v in self._views.items() if k[0] != subject}
        else:
            self._views.pop((subject, version), None)

    def subject(self, name: str, *, deleted: bool = False) -> SubjectState:
        """The subject with at least one live version (any with ``deleted``), else
        SubjectNotFound."""
        sub = self.fresh(name)
        if sub is None or not (sub.all() if deleted else sub.live()):
            raise SubjectNotFound(f"Subject '{name}' not found.")
        return sub

    def view(self, subject: str, v: VersionState) -> RegisteredSchema:
        """Version ``v`` of ``subject`` as a RegisteredSchema."""
        key = (subject, v.version)
        view = self._views.get(key)
        if view is None or view.id != v.schema_id:
            view = replace(self.schema_by_id(v.schema_id), subject=subject, version=v.version)
            self._views[key] = view
        return view

    def schema_by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema with global id ``schema_id`` (as first registered), read from the
        database when another process registered it. Raises SchemaNotFound."""
        found = self.by_id.get(schema_id)
        if found is not None:
            return found
        if not 0 < schema_id <= _MAX_ID:
            raise SchemaNotFound(f"Schema {schema_id} not found")
        with _store.transaction(self._engine) as conn:
            row = conn.execute(
                select(_store.schemas).where(_store.schemas.c.id == schema_id)
            ).first()
        if row is None:
            raise SchemaNotFound(f"Schema {schema_id} not found")
        with self.lock:
            self.remember_schema(
                row.id, SchemaType(row.schema_type), row.canonical, row.subject, row.version
            )
        return self.by_id[schema_id]
