"""What a schema change does to the features that read its subject: which fields it
removes, renames or retypes, which values its migration changes, and for every live
feature version of the subject the fields it reads among those and whether its definition
still compiles against the candidate."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from materializer.features._catalog import DELETED, FAILED, FeatureRecord
from materializer.features._fields import FieldType
from materializer.features._upcast import FieldReader
from materializer.features.definition import CompiledFeature
from sluicegate.errors import InvalidDefinition, SluicegateError

__all__ = ["FeatureImpact", "FieldChanges", "feature_impacts", "field_changes"]


@dataclass(frozen=True)
class FieldChanges:
    """Fields of the subject's latest version a candidate changes (dotted paths)."""

    removed: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # old path -> new path
    retyped: dict[str, str] = field(default_factory=dict)  # path -> "integer -> string"
    migrated: list[str] = field(default_factory=list)  # values a migration sets or derives

    @property
    def paths(self) -> set[str]:
        """Every latest-version path whose values readers would see change."""
        return {*self.removed, *self.renamed, *self.retyped, *self.migrated}

    def as_dict(self) -> dict[str, Any]:
        return {
            "removed": self.removed,
            "renamed": self.renamed,
            "retyped": self.retyped,
            "migrated": self.migrated,
        }


@dataclass(frozen=True)
class FeatureImpact:
    """One feature version that reads a changed field, or that the change breaks."""

    name: str
    version: int
    owner: str
    status: str
    reads: list[str]
    breaks: str | None  # why the definition no longer compiles against the candidate

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature": self.ref,
            "name": self.name,
            "version": self.version,
            "owner": self.owner,
            "status": self.status,
            "reads": self.reads,
            "breaks": self.breaks is not None,
            "reason": self.breaks,
        }


def _kind(ftype: FieldType) -> str:
    return ftype.kind if ftype.kind != "any" else ftype.base


def field_changes(
    latest: dict[str, FieldType], candidate: dict[str, FieldType], ops: Sequence[dict[str, Any]]
) -> FieldChanges:
    """Compare the latest version's fields with the candidate's (``ops``: the candidate's
    migration operations, empty when it has none)."""
    renamed = {
        str(op["from"]): str(op["to"])
        for op in ops
        if op.get("op") in ("rename", "move") and str(op["from"]) in latest
    }
    migrated = sorted(
        {
            str(op["field"])
            for op in ops
            if op.get("op") in ("add", "cast", "derive") and str(op["field"]) in latest
        }
    )
    removed = sorted(p for p in latest if p not in candidate and p not in renamed)
    retyped = {
        p: f"{_kind(latest[p])} -> {_kind(candidate[p])}"
        for p in sorted(latest)
        if p in candidate and latest[p].base != candidate[p].base
    }
    return FieldChanges(removed, renamed, retyped, migrated)


def feature_impacts(
    records: Sequence[FeatureRecord],
    subject: str,
    changes: FieldChanges,
    compiled: Callable[[FeatureRecord], CompiledFeature],
    candidate: Any,
    candidate_reader: FieldReader,
) -> list[FeatureImpact]:
    """The live feature versions of ``subject`` that read a changed field or no longer
    compile against ``candidate`` (``compiled``: the store's compiled form of a record)."""
    changed = changes.paths
    out = []
    for rec in records:
        if rec.status in (DELETED, FAILED) or rec.spec.get("source") != subject:
            continue
        try:
            reads = sorted(set(compiled(rec).fields) & changed)
        except SluicegateError:
            reads = []
        breaks = None
        try:
            rec.definition.compiled(candidate, reader=candidate_reader)
        except InvalidDefinition as exc:
            breaks = exc.message
        if reads or breaks:
            out.append(FeatureImpact(rec.name, rec.version, rec.owner, rec.status, reads, breaks))
    return out
