"""The Registry: subjects, versions, global ids, metadata, tokens and config, kept in the
registry database and mirrored in memory (``registry._mirror``) so lookups by id never
touch the database. Who may change what is ``registry._policy``; this module applies it."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from sqlalchemy import Engine, func, select

from registry import _compat, _store
from registry._candidate import Candidate, candidate_of
from registry._mirror import Mirror
from registry._model import SubjectState, VersionState, fingerprint
from registry._policy import (
    check_metadata,
    check_owner_change,
    judge,
    registration_metadata,
    require_manager,
)
from registry._readplan import ReadPlan, read_plan
from registry._schemas import ParsedSchema, parse
from registry._tokens import Tokens
from registry._types import (
    Compatibility,
    Principal,
    RegisteredSchema,
    RegisterResult,
    SchemaType,
    SubjectMetadata,
)
from registry._upcast import build_steps
from sluicegate.errors import (
    Forbidden,
    IncompatibleSchema,
    InvalidMigration,
    SchemaNotFound,
    SubjectNotFound,
    SubjectNotSoftDeleted,
    SubjectSoftDeleted,
    Unprocessable,
    VersionNotFound,
    VersionNotSoftDeleted,
    VersionSoftDeleted,
)
from sluicegate.naming import is_valid_subject


class Registry:
    """The schema registry (see docs/registry.md). Thread-safe; build one per process with
    :meth:`open` and pass it where it is needed."""

    def __init__(
        self,
        engine: Engine,
        *,
        admin_token: str | None,
        anonymous_read: bool,
        refresh_seconds: float = 5.0,
    ) -> None:
        self._engine = engine
        self._lock = threading.RLock()
        self.anonymous_read = anonymous_read
        self._m = Mirror(engine, self._lock, refresh_seconds)
        self._tokens = Tokens(engine, admin_token)
        self._m.load()
        self._tokens.load()

    # ---------------------------------------------------------------- lifecycle
    @classmethod
    def open(
        cls,
        db_url: str,
        *,
        admin_token: str | None = None,
        anonymous_read: bool = False,
        refresh_seconds: float = 5.0,
    ) -> Registry:
        """Open (and migrate) the registry database at ``db_url`` and load it into memory.
        A subject read from memory is re-read from the database once it is older than
        ``refresh_seconds``, so processes sharing a database see each other's changes."""
        return cls(
            _store.open_engine(db_url),
            admin_token=admin_token,
            anonymous_read=anonymous_read,
            refresh_seconds=refresh_seconds,
        )

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    # ---------------------------------------------------------------- reads
    def schema_by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema with global id ``schema_id`` (as first registered); deleted subjects'
        ids still resolve. Raises SchemaNotFound."""
        return self._m.schema_by_id(schema_id)

    def version(self, subject: str, version: int, *, deleted: bool = False) -> RegisteredSchema:
        """Version ``version`` of ``subject`` (-1 means latest). Raises SubjectNotFound or
        VersionNotFound; soft-deleted versions only with ``deleted=True``."""
        if version == -1:
            return self.latest(subject, deleted=deleted)
        sub = self._m.subject(subject, deleted=deleted)
        v = sub.versions.get(version)
        if v is None or (v.deleted and not deleted):
            raise VersionNotFound(f"Version {version} not found.")
        return self._m.view(subject, v)

    def latest(self, subject: str, *, deleted: bool = False) -> RegisteredSchema:
        """The newest live version of ``subject`` (or newest at all with ``deleted``)."""
        sub = self._m.subject(subject, deleted=deleted)
        return self._m.view(subject, (sub.all() if deleted else sub.live())[-1])

    def versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        """Version numbers of ``subject`` (soft-deleted ones too with ``deleted``)."""
        sub = self._m.subject(subject, deleted=deleted)
        return [v.version for v in (sub.all() if deleted else sub.live())]

    def subjects(self, *, deleted: bool = False, prefix: str = "") -> list[str]:
        """Subjects with at least one live version (or any version with ``deleted``)."""
        return sorted(
            name
            for name, sub in list(self._m.subjects.items())
            if name.startswith(prefix) and (sub.all() if deleted else sub.live())
        )

    def subject_versions_of_id(
        self, schema_id: int, *, deleted: bool = False
    ) -> list[tuple[str, int]]:
        """Every (subject, version) that uses schema ``schema_id``."""
        self.schema_by_id(schema_id)
        return sorted(
            (name, v.version)
            for name, sub in list(self._m.subjects.items())
            for v in sub.all()
            if v.schema_id == schema_id and (deleted or not v.deleted)
        )

    def lookup(
        self, subject: str, schema: str, schema_type: SchemaType, *, deleted: bool = False
    ) -> RegisteredSchema:
        """The version of ``subject`` whose canonical form equals ``schema``'s.
        Raises SubjectNotFound, SchemaNotFound or InvalidSchema."""
        parsed = parse(schema, schema_type)
        sub = self._m.subject(subject, deleted=deleted)
        schema_id = self._m.by_fp.get(fingerprint(schema_type, parsed.canonical))
        for v in reversed(sub.all() if deleted else sub.live()):
            if v.schema_id == schema_id:
                return self._m.view(subject, v)
        raise SchemaNotFound("Schema not found")

    def metadata(self, subject: str) -> SubjectMetadata:
        """The subject's metadata (owner, entity key, event time, description, tags)."""
        sub = self._m.fresh(subject)
        if sub is None:
            raise SubjectNotFound(f"Subject '{subject}' not found.")
        return sub.metadata

    def migration(self, subject: str, version: int) -> list[dict[str, Any]] | None:
        """The migration a version carries from the version before it (None: none)."""
        sub = self._m.subject(subject, deleted=True)
        v = sub.versions.get(version)
        if v is None:
            raise VersionNotFound(f"Version {version} not found.")
        return v.migration

    # ---------------------------------------------------------------- config
    def global_compatibility(self) -> Compatibility:
        """The default level for subjects without their own."""
        return self._m.global_level

    def set_global_compatibility(
        self, level: Compatibility, *, principal: Principal
    ) -> Compatibility:
        """Change the default level (admins only)."""
        if not principal.admin:
            raise Forbidden("only an admin changes the global compatibility level")
        with self._lock, _store.transaction(self._engine) as conn:
            _store.set_config(conn, "compatibility", level.value)
            self._m.global_level = level
        return level

    def subject_compatibility(self, subject: str) -> Compatibility | None:
        """The subject's own level, None when it follows the global one."""
        sub = self._m.fresh(subject)
        return sub.compatibility if sub else None

    def compatibility(self, subject: str) -> Compatibility:
        """The level that applies to ``subject``."""
        return self.subject_compatibility(subject) or self._m.global_level

    def set_subject_compatibility(
        self, subject: str, level: Compatibility | None, *, principal: Principal
    ) -> Compatibility | None:
        """Set (or with None, remove) the subject's own level; returns the previous one."""
        if not is_valid_subject(subject):
            raise Unprocessable(f"invalid subject name {subject!r}")
        with self._lock:
            sub = self._m.fresh(subject)
            if sub is not None:
                require_manager(subject, sub.metadata.owner, principal)
            if sub is None:
                if level is None:
                    raise SubjectNotFound(f"Subject '{subject}' not found.")
                # a level set before the first registration claims nothing: the team
                # that registers the first version owns the subject
                sub = SubjectState(subject, SubjectMetadata(subject, owner=None))
            previous = sub.compatibility
            with _store.transaction(self._engine) as conn:
                _store.upsert_subject(conn, sub.metadata, level)
            sub.compatibility = level
            self._m.subjects[subject] = sub
        return previous

    # ---------------------------------------------------------------- writes
    def test_compatibility(
        self, subject: str, schema: str, schema_type: SchemaType, *, version: int | None = None
    ) -> list[str]:
        """Why ``schema`` may not become the next version of ``subject``: one message
        ``"<path>: <RULE>: <detail>"`` per failure, empty when compatible. With ``version``
        it is checked against that version only, otherwise as the subject's level says."""
        parsed = parse(schema, schema_type)
        try:
            sub = self._m.subject(subject)
        except SubjectNotFound:
            if version is not None and version != -1:
                raise
            return []
        level = sub.compatibility or self._m.global_level
        if version is not None:
            target = self.version(subject, version)
            previous = [(target.version, self._m.parsed[target.id])]
            if level is Compatibility.NONE:
                level = Compatibility.BACKWARD
        else:
            previous = [(v.version, self._m.parsed[v.schema_id]) for v in sub.live()]
        return _compat.check(parsed, previous, level)

    def candidate(
        self,
        subject: str,
        schema: str,
        schema_type: SchemaType,
        *,
        migration: list[dict[str, Any]] | None = None,
    ) -> Candidate:
        """``schema`` as it would be as the next version of ``subject`` (registered or not
        by anyone: nothing is written), with whether registering it would be accepted and
        why (the compatibility level, the migration), to read the stored events through.
        Raises SubjectNotFound, or InvalidSchema for a schema that does not parse."""
        parsed = parse(schema, schema_type)
        with self._lock:
            sub = self._m.subject(subject)
            level = sub.compatibility or self._m.global_level
            previous = [(v.version, self._m.parsed[v.schema_id]) for v in sub.live()]
            try:
                messages, _ = judge(subject, parsed, previous, level, migration)
                accepted = True
            except (IncompatibleSchema, InvalidMigration) as exc:
                messages = list(exc.details.get("messages") or [exc.message])
                accepted = False
            return candidate_of(sub, self._m.parsed, parsed, migration, accepted, messages)

    def register(
        self,
        subject: str,
        schema: str,
        schema_type: SchemaType,
        *,
        principal: Principal,
        migration: list[dict[str, Any]] | None = None,
        metadata: SubjectMetadata | None = None,
    ) -> RegisterResult:
        """Register ``schema`` under ``subject`` (see docs/registry.md for the rules).

        Identical re-registration returns the existing id and version. A change the
        compatibility level refuses is accepted when ``migration`` makes old events valid
        new ones; the result then has ``migrated=True`` and says why in ``messages``.
        """
        if not is_valid_subject(subject):
            raise Unprocessable(
                f"invalid subject name {subject!r}: letters, digits, '.', '_' and '-' only"
            )
        parsed = parse(schema, schema_type)
        fp = fingerprint(schema_type, parsed.canonical)
        with self._lock:
            sub = self._m.fresh(subject)
            owner = sub.metadata.owner if sub else None
            existing_id = self._m.by_fp.get(fp)
            if sub is not None and existing_id is not None:
                for v in reversed(sub.live()):
                    if v.schema_id == existing_id:
                        if not (
                            principal.can_manage(owner) or principal.can_produce(subject, owner)
                        ):
                            raise Forbidden(f"subject '{subject}' is owned by team '{owner}'")
                        if metadata is not None and metadata != sub.metadata:
                            self.set_metadata(metadata, principal=principal)
                        return RegisterResult(existing_id, v.version, created=False)
            require_manager(subject, owner, principal, "register versions")
            live = sub.live() if sub else []
            level = (sub.compatibility if sub else None) or self._m.global_level
            previous = [(v.version, self._m.parsed[v.schema_id]) for v in live]
            messages, migrated = judge(subject, parsed, previous, level, migration)
            meta = registration_metadata(
                subject, metadata, sub.metadata if sub else None, principal
            )
            check_metadata(meta, parsed)
            return self._insert_version(
                sub, meta, parsed, fp, schema_type, migration, migrated, messages
            )

    def _insert_version(
        self,
        sub: SubjectState | None,
        meta: SubjectMetadata,
        parsed: ParsedSchema,
        fp: str,
        schema_type: SchemaType,
        migration: list[dict[str, Any]] | None,
        migrated: bool,
        messages: list[str],
    ) -> RegisterResult:
        subject = meta.subject
        number = max(sub.versions, default=0) + 1 if sub else 1
        schema_id = self._m.by_fp.get(fp)
        with _store.transaction(self._engine) as conn:
            if schema_id is None:
                schema_id = _store.schema_id(
                    conn,
                    fingerprint=fp,
                    schema_type=schema_type.value,
                    canonical=parsed.canonical,
                    subject=subject,
                    version=number,
                )
            _store.insert_version(conn, subject, number, schema_id, migration)
            _store.upsert_subject(conn, meta, sub.compatibility if sub else None)
        if schema_id not in self._m.by_id:
            self._m.remember_parsed(schema_id, parsed, schema_type, subject, number)
        if sub is None:
            sub = SubjectState(subject, meta)
            self._m.subjects[subject] = sub
        sub.metadata = meta
        sub.versions[number] = VersionState(number, schema_id, False, migration)
        self._m.forget_derived(subject)
        return RegisterResult(schema_id, number, created=True, migrated=migrated, messages=messages)

    def set_metadata(self, metadata: SubjectMetadata, *, principal: Principal) -> SubjectMetadata:
        """Replace a subject's metadata (owner or admin only). Entity-key and event-time
        fields must be fields of the latest version."""
        with self._lock:
            sub = self._m.fresh(metadata.subject)
            if sub is None:
                raise SubjectNotFound(f"Subject '{metadata.subject}' not found.")
            require_manager(metadata.subject, sub.metadata.owner, principal)
            check_owner_change(metadata.owner, sub.metadata.owner, principal)
            meta = metadata if metadata.owner else replace(metadata, owner=sub.metadata.owner)
            live = sub.live()
            check_metadata(meta, self._m.parsed[live[-1].schema_id] if live else None)
            with _store.transaction(self._engine) as conn:
                _store.upsert_subject(conn, meta, sub.compatibility)
            sub.metadata = meta
        return meta

    def delete_subject(self, subject: str, *, permanent: bool, principal: Principal) -> list[int]:
        """Soft-delete every live version of ``subject`` or, with ``permanent``, remove a
        soft-deleted subject for good. Schema ids keep resolving either way."""
        with self._lock:
            sub = self._m.subject(subject, deleted=True)
            require_manager(subject, sub.metadata.owner, principal)
            live = [v.version for v in sub.live()]
            if permanent:
                if live:
                    raise SubjectNotSoftDeleted(
                        f"Subject '{subject}' was not deleted first before being "
                        "permanently deleted"
                    )
                gone = [v.version for v in sub.all()]
                with _store.transaction(self._engine) as conn:
                    _store.hard_delete(conn, subject)
                del self._m.subjects[subject]
                self._m.forget_views(subject)
                return gone
            if not live:
                raise SubjectSoftDeleted(
                    f"Subject '{subject}' was soft deleted. Set permanent=true to "
                    "delete permanently"
                )
            with _store.transaction(self._engine) as conn:
                _store.soft_delete(conn, subject)
            for v in sub.versions.values():
                v.deleted = True
            return live

    def delete_version(
        self, subject: str, version: int, *, permanent: bool, principal: Principal
    ) -> int:
        """Soft-delete one version or, with ``permanent``, remove a soft-deleted one."""
        with self._lock:
            sub = self._m.subject(subject, deleted=True)
            require_manager(subject, sub.metadata.owner, principal)
            if version == -1:
                candidates = sub.all() if permanent else sub.live()
                if not candidates:
                    raise VersionNotFound(f"Version {version} not found.")
                version = candidates[-1].version
            v = sub.versions.get(version)
            if v is None:
                raise VersionNotFound(f"Version {version} not found.")
            if permanent:
                if not v.deleted:
                    raise VersionNotSoftDeleted(
                        f"Subject '{subject}' Version {version} was not deleted first "
                        "before being permanently deleted"
                    )
                with _store.transaction(self._engine) as conn:
                    _store.hard_delete(conn, subject, version)
                del sub.versions[version]
                self._m.forget_views(subject, version)
                return version
            if v.deleted:
                raise VersionSoftDeleted(
                    f"Subject '{subject}' Version {version} was soft deleted. Set "
                    "permanent=true to delete permanently"
                )
            with _store.transaction(self._engine) as conn:
                _store.soft_delete(conn, subject, version)
            v.deleted = True
            return version

    # ---------------------------------------------------------------- upcasting
    def upcast(
        self, subject: str, from_version: int, payload: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """Bring an event written with ``from_version`` to the subject's latest version by
        running each later version's migration (or, for Avro versions without one, Avro
        schema resolution). Raises InvalidMigration when a step fails."""
        latest = self.latest(subject).version
        if from_version == latest:
            return latest, payload
        key = (subject, from_version, latest)
        steps = self._m.upcasters.get(key)
        if steps is None:
            steps = build_steps(self._m.subject(subject), self._m.parsed, from_version, latest)
            self._m.upcasters[key] = steps
        for step in steps:
            payload = step(payload)
        return latest, payload

    def latest_versions(self) -> dict[str, int]:
        """Every subject's latest live version, in one database query (for watchers that
        must notice new versions of any subject without re-reading each one)."""
        with _store.transaction(self._engine) as conn:
            rows = conn.execute(
                select(_store.versions.c.subject, func.max(_store.versions.c.version))
                .where(_store.versions.c.deleted.is_(False))
                .group_by(_store.versions.c.subject)
            ).all()
        return {str(subject): int(version) for subject, version in rows}

    def read_plan(self, subject: str, version: int | None = None) -> ReadPlan:
        """How each field of the subject's latest version (or of ``version``) is read from
        events stored under older versions (see :mod:`registry._readplan`)."""
        target = version if version is not None else self.latest(subject).version
        with self._lock:
            plans = self._m.read_plans.setdefault(subject, {})
            cached = plans.get(target)
            if cached is None:
                cached = plans[target] = read_plan(self._m.subject(subject), self._m.parsed, target)
        return cached

    # ---------------------------------------------------------------- auth
    def authenticate(self, authorization_header: str | None) -> Principal | None:
        """The principal of ``Bearer <token>`` or ``Basic <team>:<token>``; None when the
        header is missing or the token unknown (or the team does not match)."""
        return self._tokens.authenticate(authorization_header)

    def create_token(self, team: str, *, subjects: str | None = None, admin: bool = False) -> str:
        """Create a token for ``team`` (returned once; only its hash is stored)."""
        return self._tokens.create(team, subjects=subjects, admin=admin)
