"""The registry's value types: formats, compatibility levels, registered schemas, subject
metadata, registration results and the calling principal."""

from __future__ import annotations

import fnmatch
import io
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
from fastavro import schemaless_reader, schemaless_writer


class SchemaType(StrEnum):
    """Schema formats the registry accepts (Confluent's ``schemaType``)."""

    AVRO = "AVRO"
    JSON = "JSON"


class Compatibility(StrEnum):
    """Confluent's compatibility levels.

    BACKWARD: the new schema reads data written with the previous one; FORWARD: the previous
    schema reads data written with the new one; FULL: both. The _TRANSITIVE forms check
    against every earlier version instead of only the latest.
    """

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def backward(self) -> bool:
        """New schema must read old data."""
        return self in (
            Compatibility.BACKWARD,
            Compatibility.BACKWARD_TRANSITIVE,
            Compatibility.FULL,
            Compatibility.FULL_TRANSITIVE,
        )

    @property
    def forward(self) -> bool:
        """Old schemas must read new data."""
        return self in (
            Compatibility.FORWARD,
            Compatibility.FORWARD_TRANSITIVE,
            Compatibility.FULL,
            Compatibility.FULL_TRANSITIVE,
        )

    @property
    def transitive(self) -> bool:
        """Check against every earlier version, not only the latest."""
        return self.endswith("_TRANSITIVE")


@dataclass(frozen=True)
class RegisteredSchema:
    """One version of a subject. ``schema`` is the canonical text, ``parsed`` the fastavro
    parsed schema (AVRO) or the schema dict (JSON)."""

    id: int
    subject: str
    version: int
    schema_type: SchemaType
    schema: str
    parsed: Any = field(repr=False, compare=False)

    def encode(self, payload: dict[str, Any]) -> bytes:
        """The payload serialized in this schema's format, without the 5-byte wire frame
        (AVRO: schemaless binary; JSON: UTF-8 JSON). Raises ValueError/TypeError when the
        payload does not fit an Avro schema."""
        if self.schema_type is SchemaType.AVRO:
            buf = io.BytesIO()
            schemaless_writer(buf, self.parsed, payload)
            return buf.getvalue()
        return orjson.dumps(payload)

    def decode(self, body: bytes) -> dict[str, Any]:
        """The inverse of :meth:`encode`."""
        if self.schema_type is SchemaType.AVRO:
            return schemaless_reader(io.BytesIO(body), self.parsed, None)  # type: ignore[return-value]  # records decode to dicts
        return orjson.loads(body)  # type: ignore[no-any-return]  # a JSON event is an object


@dataclass(frozen=True)
class SubjectMetadata:
    """What Sluicegate knows about a subject beyond its schemas."""

    subject: str
    owner: str | None = None
    entity_key: list[str] = field(default_factory=list)
    event_time: str | None = None
    description: str = ""
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RegisterResult:
    """The outcome of :meth:`Registry.register`. ``created`` is False when the identical
    schema was already a version of the subject; ``migrated`` is True when the change was
    accepted because its migration makes old events readable (``messages`` says why)."""

    id: int
    version: int
    created: bool
    migrated: bool = False
    messages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a team, whether it is an admin, and the subject patterns
    (fnmatch-style, comma separated) its token may produce to beyond its own subjects."""

    team: str
    admin: bool = False
    subjects: str | None = None

    def _patterns(self) -> list[str]:
        return [p.strip() for p in (self.subjects or "").split(",") if p.strip()]

    def can_produce(self, subject: str, owner: str | None) -> bool:
        """Admin, the subject's owner, or a token granted a pattern matching the subject."""
        if self.admin or (owner is not None and owner == self.team):
            return True
        return any(fnmatch.fnmatchcase(subject, p) for p in self._patterns())

    def can_manage(self, owner: str | None) -> bool:
        """Admin, or the owner team (anyone authenticated may claim an unowned subject)."""
        return self.admin or owner is None or owner == self.team
