"""Parsing, validation and canonical forms of Avro and JSON Schema documents.

The canonical form decides identity: two texts with the same canonical form are the same
schema (same id, no new version). It is compact JSON with sorted object keys; for Avro,
names are also fully qualified (``namespace`` folded into ``name``) and primitive types
written as plain strings, so ``{"type": "string"}`` and ``"string"`` are one schema. Unlike
Avro's Parsing Canonical Form it keeps defaults, aliases, docs and logical types, because
those matter for compatibility and for readers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from fastavro.schema import SchemaParseException, UnknownType, parse_schema
from jsonschema import Draft7Validator, validators
from jsonschema.exceptions import SchemaError

from registry._types import SchemaType
from sluicegate.errors import InvalidSchema

AVRO_PRIMITIVES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
_NAMED = frozenset({"record", "error", "enum", "fixed"})


@dataclass(frozen=True)
class ParsedSchema:
    """A validated schema: its canonical text and the parsed form used for (de)serializing."""

    schema_type: SchemaType
    canonical: str
    parsed: Any
    document: Any  # the normalized JSON document (before fastavro parsing)


def _dumps(doc: Any) -> str:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def _load(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidSchema(f"schema is not valid JSON: {exc}") from exc


def _fullname(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _normalize_avro(node: Any, namespace: str | None, path: str) -> Any:
    """Normalize an Avro schema node (see the module docstring)."""
    if isinstance(node, str):
        if node in AVRO_PRIMITIVES:
            return node
        return _fullname(node, namespace)
    if isinstance(node, list):
        return [_normalize_avro(b, namespace, f"{path}[{i}]") for i, b in enumerate(node)]
    if not isinstance(node, dict):
        raise InvalidSchema(f"{path or '/'}: an Avro schema is a string, an array or an object")
    kind = node.get("type")
    if isinstance(kind, (dict, list)):
        extra = {k: v for k, v in node.items() if k != "type"}
        inner = _normalize_avro(kind, namespace, f"{path}/type")
        return inner if not extra else {**extra, "type": inner}
    if not isinstance(kind, str):
        raise InvalidSchema(f"{path or '/'}: missing or invalid 'type'")
    out = {k: v for k, v in node.items() if k not in ("type", "namespace")}
    if kind in AVRO_PRIMITIVES:
        return kind if not out else {**out, "type": kind}
    if kind in _NAMED:
        name = node.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidSchema(f"{path or '/'}: a {kind} needs a 'name'")
        ns = node.get("namespace") if "namespace" in node else namespace
        full = _fullname(name, ns or None)
        out["name"] = full
        child_ns = full.rsplit(".", 1)[0] if "." in full else None
        if kind in ("record", "error"):
            fields = node.get("fields")
            if not isinstance(fields, list):
                raise InvalidSchema(f"{path or '/'}: record {full} needs a 'fields' array")
            out["fields"] = []
            for i, f in enumerate(fields):
                if not isinstance(f, dict) or "name" not in f or "type" not in f:
                    raise InvalidSchema(f"{path}/fields/{i}: a field needs 'name' and 'type'")
                nf = dict(f)
                nf["type"] = _normalize_avro(f["type"], child_ns, f"{path}/{f['name']}")
                out["fields"].append(nf)
        return {**out, "type": kind}
    if kind == "array":
        if "items" not in node:
            raise InvalidSchema(f"{path or '/'}: an array needs 'items'")
        out["items"] = _normalize_avro(node["items"], namespace, f"{path}/items")
        return {**out, "type": kind}
    if kind == "map":
        if "values" not in node:
            raise InvalidSchema(f"{path or '/'}: a map needs 'values'")
        out["values"] = _normalize_avro(node["values"], namespace, f"{path}/values")
        return {**out, "type": kind}
    # a reference to a named type written as {"type": "Name"}
    return _fullname(kind, namespace) if not out else {**out, "type": _fullname(kind, namespace)}


def parse_avro(text: str) -> ParsedSchema:
    """Validate an Avro schema text; raises InvalidSchema naming the problem."""
    doc = _normalize_avro(_load(text), None, "")
    try:
        parsed = parse_schema(doc)
    except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError) as exc:
        raise InvalidSchema(f"invalid Avro schema: {exc}") from exc
    return ParsedSchema(SchemaType.AVRO, _dumps(doc), parsed, doc)


def parse_json_schema(text: str) -> ParsedSchema:
    """Validate a JSON Schema text (draft-07 unless ``$schema`` names another draft, e.g.
    2020-12); raises InvalidSchema naming the problem."""
    doc = _load(text)
    if not isinstance(doc, dict):
        raise InvalidSchema("a JSON Schema for events must be a JSON object")
    cls = validators.validator_for(doc, default=Draft7Validator)
    try:
        cls.check_schema(doc)
    except SchemaError as exc:
        where = "/" + "/".join(str(p) for p in exc.path)
        raise InvalidSchema(f"invalid JSON Schema at {where}: {exc.message}") from exc
    return ParsedSchema(SchemaType.JSON, _dumps(doc), doc, doc)


def parse(text: str, schema_type: SchemaType) -> ParsedSchema:
    """Parse and validate ``text`` as ``schema_type``."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidSchema("the schema is empty")
    if schema_type is SchemaType.AVRO:
        return parse_avro(text)
    return parse_json_schema(text)


def schema_type_of(value: str | None) -> SchemaType:
    """Confluent's ``schemaType`` (absent means AVRO); InvalidSchema for unsupported ones."""
    if value is None or value == "":
        return SchemaType.AVRO
    try:
        return SchemaType(value.upper())
    except ValueError:
        raise InvalidSchema(f"unsupported schemaType {value!r}; supported: AVRO, JSON") from None
