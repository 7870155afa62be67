"""Upcasting: the chain of steps that brings an event of an older version to a newer one.
A version's step is its migration when it carries one; otherwise, for Avro, Avro schema
resolution (defaults filled in, promotions applied), and for JSON the event unchanged."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from registry import _migration
from registry._model import SubjectState, VersionState
from registry._schemas import ParsedSchema
from registry._types import SchemaType
from sluicegate.errors import InvalidMigration, VersionNotFound

Step = Callable[[dict[str, Any]], dict[str, Any]]


def _unchanged(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


def _resolution_step(
    writer: VersionState, reader: VersionState, parsed: Mapping[int, ParsedSchema]
) -> Step:
    w, r = parsed[writer.schema_id], parsed[reader.schema_id]
    if (
        w.schema_type is not SchemaType.AVRO
        or r.schema_type is not SchemaType.AVRO
        or writer.schema_id == reader.schema_id
    ):
        return _unchanged

    def resolve(payload: dict[str, Any]) -> dict[str, Any]:
        try:
            buf = io.BytesIO()
            schemaless_writer(buf, w.parsed, payload)
            buf.seek(0)
            return schemaless_reader(buf, w.parsed, r.parsed)  # type: ignore[return-value]  # records decode to dicts
        except Exception as exc:  # fastavro raises many types for unreadable data
            raise InvalidMigration(
                f"cannot read version {writer.version} data as version {reader.version}: {exc}"
            ) from exc

    return resolve


def build_steps(
    sub: SubjectState, parsed: Mapping[int, ParsedSchema], from_version: int, latest: int
) -> list[Step]:
    """The steps from ``from_version`` to ``latest`` (soft-deleted versions included:
    old events may have been written with them)."""
    if from_version not in sub.versions:
        raise VersionNotFound(f"Version {from_version} of subject '{sub.name}' not found.")
    steps: list[Step] = []
    prev = sub.versions[from_version]
    for v in sub.all():
        if v.version <= from_version or v.version > latest:
            continue
        if v.migration is not None:
            steps.append(_migration.step(_migration.validate(v.migration), v.version))
        else:
            steps.append(_resolution_step(prev, v, parsed))
        prev = v
    return steps
