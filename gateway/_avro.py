"""JSON input for Avro subjects: walk the Avro schema beside the JSON value, convert it to
the datums fastavro writes, and name every field that does not fit.

The JSON form accepted is the natural one (what a service would send): records as objects,
unions as the plain value (the first branch that fits wins), ``bytes``/``fixed`` as text
(each character one byte, as Avro's JSON encoding does), ``timestamp-*`` as epoch numbers
or RFC 3339 text, ``date`` as days or ``YYYY-MM-DD``, ``decimal`` as a number or numeric
text. Fields with a default may be left out. Fields the schema does not declare are refused:
fastavro would drop them silently.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import fastavro
from fastavro.validation import ValidationError, validate

from gateway._violation import Violation

__all__ = ["AvroChecker"]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _v(path: str, rule: str, message: str) -> Violation:
    return Violation(path, rule, message)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _parse_rfc3339(text: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class AvroChecker:
    """One parsed Avro schema, able to convert JSON to Avro datums with a full error list."""

    __slots__ = ("_named", "_schema")

    def __init__(self, schema: Any) -> None:
        named: dict[str, Any] = {}
        self._schema = fastavro.parse_schema(schema, named)
        self._named = named

    def convert(self, value: Any) -> tuple[Any, list[Violation]]:
        """(the datum fastavro can write, the violations; empty when it fits).

        What the walk lets through is checked once more by fastavro itself, the writer."""
        out: list[Violation] = []
        datum = self._walk(self._schema, value, "$", out)
        if not out:
            try:
                validate(datum, self._schema, raise_errors=True)
            except ValidationError as exc:
                for err in exc.errors:
                    field = str(err.field or "")
                    path = "$" + "".join("." + p for p in field.split(".")[1:])
                    out.append(_v(path, "avro", f"{err.datum!r} does not fit {err.schema!r}"))
        return datum, out

    def _walk(self, schema: Any, value: Any, path: str, out: list[Violation]) -> Any:
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return self._primitive(schema, value, path, out)
            return self._walk(self._named[schema], value, path, out)
        if isinstance(schema, list):
            return self._union(schema, value, path, out)
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical is not None:
            return self._logical(schema, logical, value, path, out)
        if kind in ("record", "error"):
            return self._record(schema, value, path, out)
        if kind == "enum":
            if not isinstance(value, str) or value not in schema["symbols"]:
                out.append(_v(path, "enum", f"{value!r} is not one of {schema['symbols']}"))
            return value
        if kind == "array":
            if not isinstance(value, list):
                out.append(_v(path, "type", f"expected array, got {_kind(value)}"))
                return value
            items = schema["items"]
            return [self._walk(items, item, f"{path}[{i}]", out) for i, item in enumerate(value)]
        if kind == "map":
            if not isinstance(value, dict):
                out.append(_v(path, "type", f"expected object (map), got {_kind(value)}"))
                return value
            values = schema["values"]
            return {k: self._walk(values, item, f"{path}.{k}", out) for k, item in value.items()}
        if kind == "fixed":
            data = self._bytes(value, path, out)
            if isinstance(data, bytes) and len(data) != schema["size"]:
                out.append(_v(path, "size", f"expected {schema['size']} bytes, got {len(data)}"))
            return data
        return self._walk(kind, value, path, out)

    def _record(self, schema: dict[str, Any], value: Any, path: str, out: list[Violation]) -> Any:
        if not isinstance(value, dict):
            out.append(_v(path, "type", f"expected object ({schema['name']}), got {_kind(value)}"))
            return value
        datum: dict[str, Any] = {}
        declared = set()
        for field in schema["fields"]:
            name = field["name"]
            declared.add(name)
            if name in value:
                datum[name] = self._walk(field["type"], value[name], f"{path}.{name}", out)
            elif "default" in field:
                datum[name] = field["default"]
            else:
                out.append(_v(f"{path}.{name}", "required", f"{name!r} is a required field"))
        for name in value:
            if name not in declared:
                message = f"{name!r} is not a field of {schema['name']}"
                out.append(_v(f"{path}.{name}", "unknown_field", message))
        return datum

    def _union(self, branches: list[Any], value: Any, path: str, out: list[Violation]) -> Any:
        for branch in branches:
            trial: list[Violation] = []
            datum = self._walk(branch, value, path, trial)
            if not trial:
                return datum
        names = [b if isinstance(b, str) else b.get("name", b["type"]) for b in branches]
        out.append(_v(path, "union", f"{_kind(value)} value matches none of {names}"))
        return value

    def _primitive(self, kind: str, value: Any, path: str, out: list[Violation]) -> Any:
        ok: bool
        if kind == "null":
            ok = value is None
        elif kind == "boolean":
            ok = isinstance(value, bool)
        elif kind in ("int", "long"):
            lo, hi = _INT32 if kind == "int" else _INT64
            if isinstance(value, int) and not isinstance(value, bool):
                if not lo <= value <= hi:
                    out.append(_v(path, "range", f"{value} is out of the {kind} range"))
                return value
            ok = False
        elif kind in ("float", "double"):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif kind == "string":
            ok = isinstance(value, str)
        else:  # bytes
            return self._bytes(value, path, out)
        if not ok:
            out.append(_v(path, "type", f"expected {kind}, got {_kind(value)}"))
        return value

    def _bytes(self, value: Any, path: str, out: list[Violation]) -> Any:
        if isinstance(value, str):
            try:
                return value.encode("latin-1")
            except UnicodeEncodeError:
                out.append(_v(path, "type", "bytes as text take code points 0-255 only"))
                return value
        out.append(_v(path, "type", f"expected bytes (as text), got {_kind(value)}"))
        return value

    def _logical(
        self, schema: dict[str, Any], logical: str, value: Any, path: str, out: list[Violation]
    ) -> Any:
        base = schema["type"]
        try:
            if logical in (
                "timestamp-millis",
                "timestamp-micros",
                "local-timestamp-millis",
                "local-timestamp-micros",
            ) and isinstance(value, str):
                parsed = _parse_rfc3339(value)
                return parsed.replace(tzinfo=None) if logical.startswith("local") else parsed
            if logical == "date" and isinstance(value, str):
                return dt.date.fromisoformat(value)
            if logical == "uuid" and isinstance(value, str):
                uuid.UUID(value)
                return value
            numeric = isinstance(value, int | float | str) and not isinstance(value, bool)
            if logical == "decimal" and numeric:
                number = decimal.Decimal(str(value))
                if not number.is_finite():
                    raise ValueError("not a finite number")
                scale = int(schema.get("scale", 0))
                if -number.as_tuple().exponent > scale:  # type: ignore[operator]
                    raise ValueError(f"more than {scale} decimal places")
                return number
        except (ValueError, decimal.InvalidOperation) as exc:
            out.append(_v(path, logical, f"{value!r} is not a valid {logical}: {exc}"))
            return value
        plain = {k: v for k, v in schema.items() if k != "logicalType"}
        return self._walk(plain if base in ("fixed",) else base, value, path, out)
