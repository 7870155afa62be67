"""The schema registry: subjects, versions, global schema ids, compatibility, migration
rules, subject metadata and tokens, with a Confluent-compatible REST API
(:mod:`registry.http`). See docs/registry.md."""

from registry._candidate import Candidate, Violation
from registry._registry import Registry
from registry._types import (
    Compatibility,
    Principal,
    RegisteredSchema,
    RegisterResult,
    SchemaType,
    SubjectMetadata,
)

__all__ = [
    "Candidate",
    "Compatibility",
    "Principal",
    "RegisterResult",
    "RegisteredSchema",
    "Registry",
    "SchemaType",
    "SubjectMetadata",
    "Violation",
]
