"""Compatibility levels applied to a new schema and the subject's earlier versions."""

from __future__ import annotations

from registry import _compat_avro, _compat_json
from registry._compat_avro import Incompatibility
from registry._schemas import ParsedSchema
from registry._types import Compatibility, SchemaType


def incompatibilities(reader: ParsedSchema, writer: ParsedSchema) -> list[Incompatibility]:
    """Why ``reader`` cannot read data written with ``writer`` (empty: it can)."""
    if reader.schema_type is not writer.schema_type:
        return [
            Incompatibility(
                "/",
                "SCHEMA_TYPE_CHANGED",
                f"schema type changed from {writer.schema_type} to {reader.schema_type}",
            )
        ]
    if reader.schema_type is SchemaType.AVRO:
        return _compat_avro.reader_writer_incompatibilities(reader.document, writer.document)
    return _compat_json.reader_writer_incompatibilities(reader.document, writer.document)


def check(
    new: ParsedSchema, previous: list[tuple[int, ParsedSchema]], level: Compatibility
) -> list[str]:
    """Messages ``"<path>: <RULE>: <detail> (...)"`` for each way ``new`` breaks ``level``
    against ``previous`` (oldest first); empty when compatible."""
    if level is Compatibility.NONE or not previous:
        return []
    against = previous if level.transitive else previous[-1:]
    messages: list[str] = []
    for number, old in against:
        if level.backward:
            messages.extend(
                f"{inc} (the new schema cannot read data written with version {number})"
                for inc in incompatibilities(new, old)
            )
        if level.forward:
            messages.extend(
                f"{inc} (version {number} cannot read data written with the new schema)"
                for inc in incompatibilities(old, new)
            )
    return messages
