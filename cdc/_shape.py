"""Row shapes: what columns a captured table's rows carry and of which JSON types, and the
JSON Schema each shape is registered as.

PostgreSQL emits no DDL events, so a table's shape is learnt from its rows: a row whose
columns or value types do not fit the current shape means the table changed. The catalog
(``pg_attribute``, read by :mod:`cdc._catalog`) gives the exact types, nullability and
constant defaults; the row's own values fill in whatever the catalog cannot explain (a
column the table has dropped since, or no catalog access at all).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "CatalogColumn",
    "Column",
    "Shape",
    "fits",
    "infer_shape",
    "json_schema",
    "json_type_of_pg",
    "shape_from_schema",
]

JSON_SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"

# PostgreSQL type names -> JSON types, for the connector settings cdc._render fixes
# (decimal.handling.mode=string, time.precision.mode=isostring, interval.handling.mode=string,
# binary.handling.mode=base64). Anything else is left unconstrained.
_PG_JSON: dict[str, str] = {
    **dict.fromkeys(("int2", "int4", "int8", "oid", "xid"), "integer"),
    **dict.fromkeys(("float4", "float8"), "number"),
    "bool": "boolean",
    **dict.fromkeys(
        (
            "numeric",
            "money",
            "text",
            "varchar",
            "bpchar",
            "char",
            "name",
            "citext",
            "uuid",
            "json",
            "jsonb",
            "xml",
            "bytea",
            "inet",
            "cidr",
            "macaddr",
            "macaddr8",
            "date",
            "time",
            "timetz",
            "timestamp",
            "timestamptz",
            "interval",
            "tsvector",
            "ltree",
            "int4range",
            "int8range",
            "numrange",
            "tsrange",
            "tstzrange",
            "daterange",
        ),
        "string",
    ),
}

_INT_LITERAL = re.compile(r"^\(?(-?\d+)\)?(?:::[\w ]+)?$")
_NUM_LITERAL = re.compile(r"^\(?(-?\d+\.\d+)\)?(?:::[\w ]+)?$")
_STR_LITERAL = re.compile(r"^'((?:[^']|'')*)'(?:::[\w ]+(?:\[\])?)?$")


def json_type_of_pg(typname: str, category: str, typtype: str) -> str | None:
    """The JSON type Debezium's schemaless JSON gives a PostgreSQL type (None: unknown)."""
    if category == "A":
        return "array"
    if typtype == "e":  # enum
        return "string"
    return _PG_JSON.get(typname)


@dataclass(frozen=True)
class CatalogColumn:
    """One column as the catalog describes it."""

    name: str
    typname: str
    json_type: str | None
    nullable: bool
    default_expr: str | None = None

    def default_value(self) -> Any:
        """The column default as a JSON value when it is a constant (None otherwise)."""
        expr = (self.default_expr or "").strip()
        if not expr or self.json_type is None:
            return None
        if self.json_type == "boolean" and expr in ("true", "false"):
            return expr == "true"
        if self.json_type == "integer" and (m := _INT_LITERAL.match(expr)):
            return int(m[1])
        number = _INT_LITERAL.match(expr) or _NUM_LITERAL.match(expr)
        if self.json_type == "number" and number:
            return float(number[1])
        if self.json_type == "string":
            if m := _STR_LITERAL.match(expr):
                return m[1].replace("''", "'")
            if self.typname in ("numeric", "money") and (
                m := _INT_LITERAL.match(expr) or _NUM_LITERAL.match(expr)
            ):
                return m[1]
        return None


@dataclass(frozen=True)
class Column:
    """One column of a shape. ``json_type`` None: values of any type. ``required``: old
    events without it are not valid (NOT NULL without a default, or a key column), so
    adding such a column is what BACKWARD refuses."""

    name: str
    json_type: str | None
    nullable: bool
    required: bool = False
    default: Any = None

    def schema(self) -> dict[str, Any]:
        node: dict[str, Any] = {}
        if self.json_type is not None:
            node["type"] = [self.json_type, "null"] if self.nullable else self.json_type
        if self.default is not None:
            node["default"] = self.default
        return node


@dataclass(frozen=True)
class Shape:
    """The columns of a table's rows, in column order."""

    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _value_fits(json_type: str | None, value: Any) -> bool:
    if json_type is None:
        return True
    t = type(value)
    if json_type == "string":
        return t is str
    if json_type == "integer":
        return t is int
    if json_type == "number":
        return t is float or t is int
    if json_type == "boolean":
        return t is bool
    if json_type == "array":
        return t is list
    if json_type == "object":
        return t is dict
    return False


def _json_type_of_value(value: Any) -> str | None:
    t = type(value)
    if t is bool:
        return "boolean"
    if t is int:
        return "integer"
    if t is float:
        return "number"
    if t is str:
        return "string"
    if t is list:
        return "array"
    if t is dict:
        return "object"
    return None


def fits(shape: Shape, row: Mapping[str, Any]) -> bool:
    """Whether ``row`` has exactly the shape's columns with values of their types."""
    if len(row) != len(shape.columns):
        return False
    for col in shape.columns:
        if col.name not in row:
            return False
        value = row[col.name]
        if value is None:
            if not col.nullable:
                return False
        elif not _value_fits(col.json_type, value):
            return False
    return True


def _from_catalog(c: CatalogColumn, key: set[str], *, nullable: bool) -> Column:
    required = c.name in key or (not nullable and c.default_expr is None)
    return Column(c.name, c.json_type, nullable, required, c.default_value())


def infer_shape(
    row: Mapping[str, Any] | None,
    catalog: Iterable[CatalogColumn] | None,
    *,
    key: Iterable[str] = (),
    excluded: Iterable[str] = (),
) -> Shape:
    """The shape of ``row``: catalog types, nullability and defaults where the catalog
    explains the value, the value's own type otherwise (nullable, since nothing says the
    column is NOT NULL). Without a row, the catalog's columns minus ``excluded``."""
    by_name = {c.name: c for c in catalog or ()}
    keys = set(key)
    if row is None:
        skip = set(excluded)
        return Shape(
            tuple(
                _from_catalog(c, keys, nullable=c.nullable)
                for c in by_name.values()
                if c.name not in skip
            )
        )
    columns = []
    for name, value in row.items():
        cat = by_name.get(name)
        if cat is not None and (value is None or _value_fits(cat.json_type, value)):
            columns.append(_from_catalog(cat, keys, nullable=cat.nullable or value is None))
        else:
            kind = _json_type_of_value(value)
            columns.append(Column(name, kind, name not in keys, name in keys))
    return Shape(tuple(columns))


def json_schema(shape: Shape, *, title: str, commit_time_field: str) -> dict[str, Any]:
    """The JSON Schema a shape is registered as: a closed object (so adding a nullable
    column is a backward-compatible change and dropping one is not silently accepted),
    NOT NULL columns required, plus the commit-time field."""
    properties = {c.name: c.schema() for c in shape.columns}
    properties[commit_time_field] = {"type": "string", "format": "date-time"}
    required = [c.name for c in shape.columns if c.required]
    return {
        "$schema": JSON_SCHEMA_DRAFT,
        "title": title,
        "type": "object",
        "properties": properties,
        "required": [*required, commit_time_field],
        "additionalProperties": False,
    }


def schema_text(schema: dict[str, Any]) -> str:
    """Stable text of a schema dict (for registration and comparison)."""
    return orjson.dumps(schema, option=orjson.OPT_SORT_KEYS).decode()


def shape_from_schema(schema: Mapping[str, Any], *, commit_time_field: str) -> Shape | None:
    """The shape a registered JSON Schema describes, or None when it is not a closed object
    of simple typed columns (e.g. a version the owner wrote by hand in another style)."""
    props = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(props, dict):
        return None
    if commit_time_field not in props:
        return None
    required = set(schema.get("required") or [])
    columns = []
    for name, node in props.items():
        if name == commit_time_field:
            continue
        if not isinstance(node, dict):
            return None
        raw = node.get("type")
        types = [raw] if isinstance(raw, str) else list(raw or [])
        nullable = "null" in types
        concrete = [t for t in types if t != "null"]
        if len(concrete) > 1:
            return None
        json_type = concrete[0] if concrete else None
        columns.append(
            Column(
                name,
                json_type,
                nullable if raw is not None else True,
                name in required,
                node.get("default"),
            )
        )
    return Shape(tuple(columns))
