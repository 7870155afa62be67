"""The registry's in-memory model of subjects and versions, and small pure helpers."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from registry._types import Compatibility, SchemaType, SubjectMetadata
from sluicegate.errors import InvalidCompatibilityLevel


@dataclass
class VersionState:
    """One version of a subject as the registry keeps it."""

    version: int
    schema_id: int
    deleted: bool
    migration: list[dict[str, Any]] | None

    @classmethod
    def from_row(cls, row: Any) -> VersionState:
        """From a ``versions`` table row."""
        return cls(
            row.version,
            row.schema_id,
            bool(row.deleted),
            orjson.loads(row.migration) if row.migration else None,
        )


@dataclass
class SubjectState:
    """A subject: metadata, its own compatibility level and every version (soft-deleted
    ones included)."""

    name: str
    metadata: SubjectMetadata
    compatibility: Compatibility | None = None
    versions: dict[int, VersionState] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.monotonic)

    def live(self) -> list[VersionState]:
        """Versions not soft-deleted, oldest first."""
        return [v for _, v in sorted(self.versions.items()) if not v.deleted]

    def all(self) -> list[VersionState]:
        """Every version, oldest first."""
        return [v for _, v in sorted(self.versions.items())]

    @classmethod
    def from_row(cls, row: Any) -> SubjectState:
        """From a ``subjects`` table row (versions are added separately)."""
        meta = SubjectMetadata(
            subject=row.name,
            owner=row.owner,
            entity_key=orjson.loads(row.entity_key or "[]"),
            event_time=row.event_time,
            description=row.description or "",
            tags=orjson.loads(row.tags or "[]"),
        )
        level = Compatibility(row.compatibility) if row.compatibility else None
        return cls(row.name, meta, level)


def fingerprint(schema_type: SchemaType, canonical: str) -> str:
    """The identity of a schema: its type and canonical text."""
    return hashlib.sha256(f"{schema_type}\n{canonical}".encode()).hexdigest()


def compatibility_of(value: str) -> Compatibility:
    """Parse a compatibility level (case-insensitive); 42203 for an unknown one."""
    try:
        return Compatibility(str(value).upper())
    except ValueError:
        levels = ", ".join(c.value for c in Compatibility)
        raise InvalidCompatibilityLevel(
            f"invalid compatibility level {value!r}; valid levels: {levels}"
        ) from None


def avro_record_fields(node: Any) -> list[dict[str, Any]]:
    """The fields of an Avro schema node: a record's, or those of the records among a
    union's branches; none for a primitive, enum, array, map or fixed schema."""
    if isinstance(node, list):
        return [f for branch in node for f in avro_record_fields(branch)]
    if isinstance(node, dict) and node.get("type") in ("record", "error"):
        return list(node.get("fields", []))
    return []


def field_paths(schema_type: SchemaType, document: Any) -> set[str]:
    """Dotted paths of the fields of a record / object schema (for metadata checks)."""
    out: set[str] = set()

    def avro(node: Any, prefix: str) -> None:
        for f in avro_record_fields(node):
            path = f"{prefix}{f['name']}"
            out.add(path)
            avro(f["type"], path + ".")

    def jsn(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                out.add(f"{prefix}{name}")
                jsn(sub, f"{prefix}{name}.")

    (avro if schema_type is SchemaType.AVRO else jsn)(document, "")
    return out
