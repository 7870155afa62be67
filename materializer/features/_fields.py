"""The payload fields of a subject's schema, with the ClickHouse type each one is read as.

Feature expressions name payload fields (dotted paths for nested records); compilation
turns each into a typed ``JSONExtract`` over ``events.payload``. This module maps an Avro
or JSON Schema to ``{path: FieldType}`` so that expressions are checked against the
subject's latest schema before anything is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["ENVELOPE_COLUMNS", "FieldType", "schema_fields"]

# Envelope columns of `events` an expression may name when no payload field has that name.
ENVELOPE_COLUMNS: dict[str, str] = {
    "occurred_at": "DateTime64(3, 'UTC')",
    "ingested_at": "DateTime64(3, 'UTC')",
    "event_id": "String",
    "entity_key": "String",
    "op": "String",
    "source_lsn": "Nullable(UInt64)",
    "source_txid": "Nullable(UInt64)",
    "source": "String",
    "producer": "String",
}


@dataclass(frozen=True)
class FieldType:
    """How a payload field is read: ``base`` is the ClickHouse type of a present value
    (``Int64``, ``Float64``, ``Bool``, ``String``, ``Array(...)``), ``nullable`` whether the
    field may be absent or null, ``kind`` the schema's own word for it (for messages)."""

    base: str
    nullable: bool
    kind: str

    @property
    def clickhouse_type(self) -> str:
        """The type given to ``JSONExtract``."""
        if self.nullable and not self.base.startswith(("Array(", "Map(")):
            return f"Nullable({self.base})"
        return self.base

    @property
    def numeric(self) -> bool:
        return self.base in ("Int64", "Float64", "UInt8", "Bool")


_AVRO_PRIMITIVES = {
    "int": "Int64",
    "long": "Int64",
    "float": "Float64",
    "double": "Float64",
    "boolean": "Bool",
    "string": "String",
    "bytes": "String",
    "enum": "String",
    "fixed": "String",
}

_JSON_PRIMITIVES = {"integer": "Int64", "number": "Float64", "boolean": "Bool", "string": "String"}


def schema_fields(schema_type: str, schema_text: str) -> dict[str, FieldType]:
    """Every addressable field path of a schema (``AVRO`` or ``JSON``) with its type.

    Nested records give dotted paths (``author.id``); a record itself is not a field.
    """
    doc = orjson.loads(schema_text)
    out: dict[str, FieldType] = {}
    if str(schema_type).upper() == "AVRO":
        _avro_record(doc, "", False, out, {})
    else:
        _json_object(doc, "", False, out, doc)
    return out


def _avro_type(t: Any, named: dict[str, Any]) -> tuple[Any, bool]:
    """Strip a ``["null", T]`` union: -> (T, nullable)."""
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        nullable = len(non_null) < len(t)
        if len(non_null) == 1:
            return non_null[0], nullable
        return {"type": "union", "branches": non_null}, nullable
    if isinstance(t, str) and t in named:
        return named[t], False
    return t, False


def _avro_record(
    rec: Any, prefix: str, nullable: bool, out: dict[str, FieldType], named: dict[str, Any]
) -> None:
    if isinstance(rec, dict) and rec.get("type") == "record":
        if "name" in rec:
            named[rec["name"]] = rec
            if rec.get("namespace"):
                named[f"{rec['namespace']}.{rec['name']}"] = rec
        for f in rec.get("fields", []):
            _avro_field(f["type"], prefix + f["name"], nullable, out, named)


def _avro_field(
    t: Any, path: str, nullable: bool, out: dict[str, FieldType], named: dict[str, Any]
) -> None:
    t, opt = _avro_type(t, named)
    nullable = nullable or opt
    if isinstance(t, dict):
        kind = t.get("type")
        if kind == "record":
            _avro_record(t, path + ".", nullable, out, named)
            return
        if kind in ("enum", "fixed"):
            if "name" in t:
                named[t["name"]] = t
            out[path] = FieldType("String", nullable, kind)
            return
        if kind == "array":
            item, _ = _avro_type(t.get("items"), named)
            base = _AVRO_PRIMITIVES.get(item if isinstance(item, str) else "")
            out[path] = FieldType(f"Array({base})" if base else "String", nullable, "array")
            return
        if kind in _AVRO_PRIMITIVES:  # e.g. {"type": "long", "logicalType": ...}
            out[path] = FieldType(_AVRO_PRIMITIVES[kind], nullable, str(t.get("logicalType", kind)))
            return
        out[path] = FieldType("String", nullable, str(kind))
        return
    base = _AVRO_PRIMITIVES.get(t) if isinstance(t, str) else None
    out[path] = FieldType(base or "String", nullable, str(t))


def _json_resolve(node: Any, root: Any) -> Any:
    if isinstance(node, dict) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if ref.startswith("#/"):
            target = root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            return target
    return node


def _json_kind(node: dict[str, Any]) -> tuple[str | None, bool]:
    t = node.get("type")
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        return (non_null[0] if len(non_null) == 1 else None), len(non_null) < len(t)
    if t is None:
        for key in ("anyOf", "oneOf"):
            branches = node.get(key)
            if isinstance(branches, list):
                kinds = [b.get("type") for b in branches if isinstance(b, dict)]
                non_null = [k for k in kinds if k != "null"]
                if len(non_null) == 1 and isinstance(non_null[0], str):
                    return non_null[0], len(non_null) < len(kinds)
        if "properties" in node:
            return "object", False
        if "enum" in node and all(isinstance(v, str) for v in node["enum"]):
            return "string", False
    return (t if isinstance(t, str) else None), False


def _json_object(
    node: Any, prefix: str, nullable: bool, out: dict[str, FieldType], root: Any
) -> None:
    node = _json_resolve(node, root)
    if not isinstance(node, dict):
        return
    required = set(node.get("required", []))
    for name, declared in (node.get("properties") or {}).items():
        sub = _json_resolve(declared, root)
        if not isinstance(sub, dict):
            continue
        kind, opt = _json_kind(sub)
        path = prefix + name
        field_nullable = nullable or opt or name not in required
        if kind == "object":
            _json_object(sub, path + ".", field_nullable, out, root)
        elif kind == "array":
            items = _json_resolve(sub.get("items"), root)
            item_kind, _ = _json_kind(items) if isinstance(items, dict) else (None, False)
            base = _JSON_PRIMITIVES.get(item_kind or "")
            out[path] = FieldType(f"Array({base})" if base else "String", field_nullable, "array")
        else:
            out[path] = FieldType(
                _JSON_PRIMITIVES.get(kind or "", "String"), field_nullable, kind or "any"
            )
