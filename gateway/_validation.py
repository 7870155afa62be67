"""Validation of one event against the exact registered schema version.

JSON Schema subjects take a compiled fast path (jsonschema-rs ``is_valid``); only a rejected
event pays for the detailed report, built with jsonschema's ``iter_errors`` (the reference
semantics) and completed with jsonschema-rs's format errors (the reference checks some
formats only when optional packages are installed). Avro subjects accept JSON; :mod:`gateway._avro`
walks the schema to name every failing field.

Validators are compiled once per global schema id and cached.
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any, Protocol

import jsonschema
import jsonschema_rs
import orjson

from gateway._avro import AvroChecker
from gateway._violation import Violation

__all__ = ["MAX_VIOLATIONS", "SchemaLike", "Validators", "json_path"]

log = logging.getLogger("sluicegate.gateway")

# A rejection lists every violation up to this many (a 16 MB body of wrong items could
# otherwise produce millions); one more entry then says the list was cut.
MAX_VIOLATIONS = 1000


class SchemaLike(Protocol):
    """What validation needs of ``registry.RegisteredSchema``."""

    @property
    def id(self) -> int: ...

    @property
    def schema_type(self) -> Any: ...

    @property
    def schema(self) -> str: ...


def json_path(parts: Any) -> str:
    """``["user", 0, "id"]`` -> ``$.user[0].id`` (the notation jsonschema's ``json_path`` uses)."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class _JsonChecker:
    """A compiled JSON Schema: a fast ``is_valid`` and a complete ``violations``."""

    __slots__ = ("_fast", "_reference")

    def __init__(self, schema: Any) -> None:
        cls = jsonschema.validators.validator_for(schema)
        self._reference = cls(schema, format_checker=cls.FORMAT_CHECKER)
        try:
            # offline: a $ref to a remote document is never fetched by the gateway.
            self._fast: Any = jsonschema_rs.validator_for(
                schema, validate_formats=True, offline=True
            )
        except (ValueError, jsonschema_rs.ReferencingError) as exc:
            log.warning(
                "schema not compilable by jsonschema-rs, using jsonschema only",
                extra={"error": str(exc)},
            )
            self._fast = None

    def violations(self, payload: Any) -> list[Violation]:
        if self._fast is not None and self._fast.is_valid(payload):
            return []
        found = [
            Violation(err.json_path, str(err.validator), err.message)
            for err in itertools.islice(self._reference.iter_errors(payload), MAX_VIOLATIONS + 1)
        ]
        if self._fast is None:
            return found
        # jsonschema checks a format only when its optional checker package is installed
        # (date-time needs rfc3339-validator); jsonschema-rs checks them all. Add its format
        # errors the reference did not report, and everything it found if the reference
        # found nothing, so a refused event never comes back without a reason.
        seen = {(v.path, v.rule) for v in found}
        extra = []
        for e in self._fast.iter_errors(payload):
            rule = str(e.schema_path[-1]) if e.schema_path else "schema"
            path = json_path(e.instance_path)
            if (not found or rule == "format") and (path, rule) not in seen:
                extra.append(Violation(path, rule, e.message))
                seen.add((path, rule))
        return found + extra


class Validators:
    """Compiled validators, one per global schema id (schema ids never change meaning)."""

    def __init__(self) -> None:
        self._cache: dict[int, _JsonChecker | AvroChecker] = {}
        self._lock = threading.Lock()

    def _checker(self, schema: SchemaLike) -> _JsonChecker | AvroChecker:
        checker = self._cache.get(schema.id)
        if checker is None:
            with self._lock:
                checker = self._cache.get(schema.id)
                if checker is None:
                    parsed = orjson.loads(schema.schema)
                    if str(schema.schema_type).upper().endswith("AVRO"):
                        checker = AvroChecker(parsed)
                    else:
                        checker = _JsonChecker(parsed)
                    self._cache[schema.id] = checker
        return checker

    def check(self, schema: SchemaLike, payload: Any) -> tuple[Any, list[Violation]]:
        """Validate ``payload``; returns (the payload to encode, violations).

        For Avro the payload to encode is the JSON input converted to Avro datums (bytes
        from text, timestamps from RFC 3339, defaults filled in)."""
        checker = self._checker(schema)
        if isinstance(checker, AvroChecker):
            datum, found = checker.convert(payload)
        else:
            datum, found = payload, checker.violations(payload)
        if len(found) > MAX_VIOLATIONS:
            found = found[:MAX_VIOLATIONS]
            found.append(
                Violation(
                    "$", "limit", f"more than {MAX_VIOLATIONS} violations; the rest are not listed"
                )
            )
        return datum, found
