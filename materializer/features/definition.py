"""Feature definitions: the model of a definition file and its compilation to SQL fragments
over ``events``, shared by online serving and training-set extraction.

A definition is either an **aggregation** over a subject's events (any ClickHouse aggregate
expression over payload fields, an optional filter and an optional sliding window) or an
**attribute** of a CDC subject: the value of a column of the entity's row as of a time
(``mode: value``), or the set of a column's values over the live rows that point at the
entity (``mode: set``, e.g. the communities a user belongs to from a memberships table).
Deletes count in both: a deleted row has no value and leaves the set.

:meth:`FeatureDefinition.compiled` returns a :class:`CompiledFeature`; the training-set
builder evaluates, for an observation of entity ``k`` at time ``t``::

    SELECT {value_agg} FROM {source} WHERE {entity_expr} = k AND {filter_expr}
      AND occurred_at < t [AND occurred_at >= t - window_ms]

over ``events`` restricted to ``subject = {subject}``; no rows gives ``default_sql``.
A set attribute is one aggregate too: the latest image of each row (by row key, in event
order) among the entity's events, kept when live, its values distinct and sorted. Deletes
must carry the row's before-image (REPLICA IDENTITY FULL) to leave the set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from materializer.features._expr import (
    ORDER_KEY_SQL,
    PLACEHOLDER0,
    AggregateCall,
    compile_aggregation,
    compile_filter,
    set_aggregate,
)
from materializer.features._fields import FieldType, schema_fields
from materializer.features._upcast import FieldReader
from sluicegate.errors import InvalidDefinition
from sluicegate.naming import is_valid_subject
from sluicegate.sqlgate import FunctionAllowlist
from sluicegate.violations import first_message, violations

if TYPE_CHECKING:
    pass

__all__ = [
    "CompiledFeature",
    "Entity",
    "FeatureDefinition",
    "FeatureKind",
    "parse_definitions",
    "parse_window",
]

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_WINDOW_RE = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
MAX_WINDOW_MS = 3660 * 86_400_000


def parse_window(text: str) -> int:
    """``7d`` -> 604800000 ms. Units: ms, s, m, h, d, w."""
    m = _WINDOW_RE.match(text)
    if not m:
        raise ValueError(
            f"bad window {text!r}: use a number and a unit (ms, s, m, h, d, w), e.g. 7d"
        )
    ms = int(m.group(1)) * _UNIT_MS[m.group(2)]
    if ms < 1000:
        raise ValueError(f"bad window {text!r}: a window is at least 1s")
    if ms > MAX_WINDOW_MS:
        raise ValueError(f"bad window {text!r}: at most 3660d; omit the window for lifetime")
    return ms


class FeatureKind(StrEnum):
    AGGREGATE = "aggregate"
    ATTRIBUTE_VALUE = "attribute_value"
    ATTRIBUTE_SET = "attribute_set"


class Entity(BaseModel):
    """Which entity a feature describes: its type (``user``) and the payload field holding
    its key (omitted: the envelope's entity key, i.e. the Kafka record key / row key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    key: str | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"entity type {v!r} must be snake_case (a-z, 0-9, _)")
        return v


class Attribute(BaseModel):
    """An attribute of a CDC subject: ``column``'s value (``mode: value``) or the set of its
    values over live rows (``mode: set``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    mode: Literal["value", "set"] = "value"


class FeatureDefinition(BaseModel):
    """One feature definition file (YAML). ``version`` is assigned by the store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    entity: Entity
    source: str
    aggregation: str | None = None
    attribute: Attribute | None = None
    filter: str | None = None
    window: str | None = None
    description: str = ""
    owner: str | None = None
    tags: list[str] = Field(default_factory=list)
    version: int | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(
                f"name {v!r} must be snake_case: a lower-case letter, then a-z, 0-9 "
                "or _, at most 63 characters"
            )
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if not is_valid_subject(v):
            raise ValueError(f"source {v!r} is not a valid subject name")
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is not None:
            parse_window(v)
        return v

    @model_validator(mode="after")
    def _kind(self) -> FeatureDefinition:
        if (self.aggregation is None) == (self.attribute is None):
            raise ValueError("give exactly one of `aggregation` or `attribute`")
        if self.attribute is not None and self.window is not None:
            raise ValueError("an attribute has no window (it is the row's state as of a time)")
        if self.attribute is not None and self.attribute.mode == "value" and self.filter:
            raise ValueError("a value attribute takes no filter")
        return self

    # -- derived ------------------------------------------------------------------------

    @property
    def kind(self) -> FeatureKind:
        if self.attribute is None:
            return FeatureKind.AGGREGATE
        if self.attribute.mode == "set":
            return FeatureKind.ATTRIBUTE_SET
        return FeatureKind.ATTRIBUTE_VALUE

    @property
    def window_ms(self) -> int | None:
        return parse_window(self.window) if self.window else None

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}" if self.version is not None else self.name

    def semantics(self) -> dict[str, Any]:
        """What the values depend on: a change here makes a new version."""
        return self.model_dump(
            include={"entity", "source", "aggregation", "attribute", "filter", "window"},
            mode="json",
        )

    def spec(self) -> dict[str, Any]:
        """The definition as written (without the version), for storage and diffs."""
        return self.model_dump(exclude={"version"}, mode="json", exclude_none=True)

    def compiled(
        self,
        schema: Any,
        functions: FunctionAllowlist | None = None,
        reader: FieldReader | None = None,
    ) -> CompiledFeature:
        """Check this definition against ``schema`` (the source subject's RegisteredSchema:
        ``schema_type`` and ``schema`` text) and compile it to SQL over ``events``.

        ``functions`` (the store's function catalog) also refuses unknown functions; without
        it only fields, types and structure are checked. ``reader`` (see
        :func:`materializer.features._upcast.field_reader`) reads events stored under older
        versions as the latest one; without it fields are read as stored. Raises
        InvalidDefinition.
        """
        fields = schema_fields(str(schema.schema_type), schema.schema)
        return _compile(self, fields, functions, reader or FieldReader())


@dataclass(frozen=True)
class CompiledFeature:
    """SQL fragments of one feature version over ``events`` columns (see module docstring).

    ``aggregates``/``template`` split ``value_agg`` into its aggregate calls for the online
    state tables (``template`` holds a placeholder per call).
    """

    name: str
    version: int
    kind: FeatureKind
    entity_type: str
    subject: str
    entity_expr: str
    value_agg: str
    filter_expr: str
    window_ms: int | None
    default_sql: str
    fields: tuple[str, ...]
    aggregates: tuple[AggregateCall, ...] = ()
    template: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def _key_sql(defn: FeatureDefinition, fields: dict[str, FieldType], reader: FieldReader) -> str:
    key = defn.entity.key
    if key is None:
        return "entity_key"
    ftype = fields.get(key)
    if ftype is None:
        known = ", ".join(sorted(fields)) or "(none)"
        raise InvalidDefinition(
            f"entity.key: unknown field {key!r}: subject {defn.source} has no such field "
            f"(fields: {known})",
            field="entity.key",
        )
    if ftype.base not in ("String", "Int64"):
        raise InvalidDefinition(
            f"entity.key: field {key!r} is a {ftype.kind}; an entity key is a string or an integer",
            field="entity.key",
        )
    if ftype.base == "String" and not reader.upcasts(key):
        keys = ", ".join(
            "'" + p.replace("\\", "\\\\").replace("'", "\\'") + "'" for p in key.split(".")
        )
        return f"JSONExtractString(payload, {keys})"
    if ftype.base == "String":
        return reader.sql(key, FieldType("String", False, ftype.kind), "entity.key")
    return (
        f"ifNull(toString({reader.sql(key, FieldType('Int64', True, ftype.kind), 'entity.key')}"
        "), '')"
    )


def _compile(
    defn: FeatureDefinition,
    fields: dict[str, FieldType],
    functions: FunctionAllowlist | None,
    reader: FieldReader,
) -> CompiledFeature:
    entity_expr = _key_sql(defn, fields, reader)
    version = defn.version or 0
    common: dict[str, Any] = {
        "name": defn.name,
        "version": version,
        "entity_type": defn.entity.type,
        "subject": defn.source,
        "entity_expr": entity_expr,
    }
    key_fields = (defn.entity.key,) if defn.entity.key else ()
    if defn.attribute is None:
        assert defn.aggregation is not None
        agg = compile_aggregation(defn.aggregation, fields, defn.source, functions, reader=reader)
        flt = compile_filter(defn.filter, fields, defn.source, functions, reader=reader)
        return CompiledFeature(
            kind=FeatureKind.AGGREGATE,
            value_agg=agg.sql,
            filter_expr=flt.sql,
            window_ms=defn.window_ms,
            default_sql="0" if agg.count_like else "NULL",
            fields=_merge(key_fields, agg.fields, flt.fields),
            aggregates=agg.aggregates,
            template=agg.template,
            **common,
        )
    column = defn.attribute.column
    if column not in fields:
        known = ", ".join(sorted(fields)) or "(none)"
        raise InvalidDefinition(
            f"attribute.column: unknown field {column!r}: subject {defn.source} has no such "
            f"field (fields: {known})",
            field="attribute.column",
        )
    if defn.attribute.mode == "value":
        text = (
            f"tupleElement(argMax(tuple(if(op = 'd', NULL, {_quote_ident(column)})), "
            f"{ORDER_KEY_SQL}), 1)"
        )
        agg = compile_aggregation(
            text, fields, defn.source, functions, what="attribute.column", reader=reader
        )
        return CompiledFeature(
            kind=FeatureKind.ATTRIBUTE_VALUE,
            value_agg=agg.sql,
            filter_expr="op != 't'",
            window_ms=None,
            default_sql="NULL",
            fields=_merge(key_fields, (column,)),
            aggregates=agg.aggregates,
            template=agg.template,
            **common,
        )
    ftype = fields[column]
    if ftype.base.startswith(("Array(", "Map(")):
        raise InvalidDefinition(
            f"attribute.column: a set attribute needs a scalar column; "
            f"{column!r} is a {ftype.kind}",
            field="attribute.column",
        )
    value_sql = reader.sql(column, FieldType(ftype.base, False, ftype.kind), "attribute.column")
    flt = compile_filter(defn.filter, fields, defn.source, functions, reader=reader)
    nullable = FieldType(ftype.base, True, ftype.kind)
    present = f"isNotNull({reader.sql(column, nullable, 'attribute.column')})"
    call, template = set_aggregate(value_sql, f"({flt.sql}) AND {present}")
    return CompiledFeature(
        kind=FeatureKind.ATTRIBUTE_SET,
        value_agg=template.replace(PLACEHOLDER0, call.sql),
        filter_expr="op != 't'",
        window_ms=None,
        default_sql="NULL",
        fields=_merge(key_fields, (column,), flt.fields),
        aggregates=(call,),
        template=template,
        **common,
    )


def _quote_ident(path: str) -> str:
    return ".".join("`" + p.replace("`", "``") + "`" for p in path.split("."))


def _merge(*groups: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for g in groups:
        for f in g:
            if f not in out:
                out.append(f)
    return tuple(out)


def parse_definitions(text: str) -> list[FeatureDefinition]:
    """Parse a YAML file holding one definition, a list, or several YAML documents."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise InvalidDefinition(f"not valid YAML: {exc}") from exc
    items: list[Any] = []
    for d in docs:
        items.extend(d if isinstance(d, list) else [d])
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidDefinition("a definition is a mapping (name, entity, source, ...)")
        if "version" in item:
            raise InvalidDefinition(
                "version: assigned by Sluicegate, not written in a file", field="version"
            )
        out.append(definition_from_dict(item))
    return out


def definition_from_dict(data: dict[str, Any]) -> FeatureDefinition:
    """Validate one definition mapping; errors name the field and the rule."""
    try:
        return FeatureDefinition.model_validate(data)
    except ValidationError as exc:
        found = violations(exc.errors(), empty_path="definition")
        name = data.get("name", "?")
        raise InvalidDefinition(
            f"feature {name}: {first_message(found)}", violations=found
        ) from exc


def dumps(defn: FeatureDefinition) -> str:
    return orjson.dumps(defn.spec(), option=orjson.OPT_SORT_KEYS).decode()
