"""Turning a spine description into a :class:`ResolvedSpine`: which entity types it has and
which type each label column is read as (from the JSON types its values actually have)."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from materializer.features._fields import schema_fields
from materializer.features._upcast import field_reader
from materializer.training import sql
from materializer.training._features import SchemaSource
from materializer.training._model import (
    LabelColumn,
    ObservationsSpine,
    ResolvedSpine,
    SubjectSpine,
    check_identifier,
)
from sluicegate.errors import ResourceNotFound, StoreUnavailable

__all__ = ["label_type", "resolve_spine"]

_NUMERIC = {"Int64": "Int64", "UInt64": "UInt64", "Double": "Float64"}


def label_type(json_types: list[str]) -> str:
    """The ClickHouse type a label is read as, from the JSON types of its values:
    integers -> Int64, any float -> Float64, booleans -> Bool, else String (objects,
    arrays and mixed kinds as JSON text). Always Nullable: a row may lack the label."""
    kinds = {t for t in json_types if t not in ("Null", "")}
    if not kinds:
        return "Nullable(String)"
    if kinds <= set(_NUMERIC):
        if kinds == {"Int64"}:
            return "Nullable(Int64)"
        if kinds == {"UInt64"}:
            return "Nullable(UInt64)"
        return "Nullable(Float64)"
    if kinds == {"Bool"}:
        return "Nullable(Bool)"
    return "Nullable(String)"


def resolve_spine(
    client: Client,
    spine: ObservationsSpine | SubjectSpine,
    database: str,
    registry: SchemaSource | None = None,
) -> ResolvedSpine:
    """Look up what SQL generation needs to know about ``spine``. With ``registry``, a
    subject spine reads its entity and label fields as the subject's latest version."""
    try:
        if isinstance(spine, ObservationsSpine):
            return _resolve_observations(client, spine, database)
        return _resolve_subject(client, spine, database, registry)
    except ClickHouseError as exc:
        raise StoreUnavailable(f"ClickHouse: {exc}") from exc


def _resolve_observations(client: Client, spine: ObservationsSpine, database: str) -> ResolvedSpine:
    table = f"`{database}`.`observations`"
    rows = client.query(
        f"SELECT count(), groupUniqArrayArray(mapKeys(entities)) FROM {table} FINAL "
        "WHERE spine = {spine:String}",
        parameters={"spine": spine.name},
    ).result_rows
    count, entity_types = rows[0]
    if not count:
        raise ResourceNotFound(f"spine {spine.name!r} has no observations")
    resolved = ResolvedSpine(
        kind="observations",
        source=spine.name,
        entities={str(t): str(t) for t in sorted(entity_types)},
    )
    labels = client.query(sql.label_types_sql(resolved, database, [])).result_rows
    return ResolvedSpine(
        kind="observations",
        source=spine.name,
        entities=resolved.entities,
        labels=tuple(
            LabelColumn(check_identifier(str(key), "label name"), str(key), label_type(list(types)))
            for key, types in labels
        ),
    )


# the label type of a latest-version field read through the read plan
_FIELD_LABEL_TYPES = {"Int64": "Nullable(Int64)", "Float64": "Nullable(Float64)"}
_FIELD_LABEL_TYPES |= {"Bool": "Nullable(Bool)", "String": "Nullable(String)"}


def _upcast_reads(registry: SchemaSource, subject: str, paths: list[str]) -> dict[str, str]:
    """The latest-version SQL of those ``paths`` that older versions' events read other
    than as stored (a renamed field, a default, a derived value)."""
    try:
        latest = registry.latest(subject)
    except ResourceNotFound:
        return {}
    fields = schema_fields(str(latest.schema_type), latest.schema)
    reader = field_reader(registry, subject)
    return {
        path: reader.sql(path, fields[path], what=f"spine field {path}")
        for path in paths
        if path in fields and reader.upcasts(path)
    }


def _upcast_label_type(registry: SchemaSource, subject: str, path: str) -> str:
    latest = registry.latest(subject)
    ftype = schema_fields(str(latest.schema_type), latest.schema)[path]
    return _FIELD_LABEL_TYPES.get(ftype.base, "Nullable(String)")


def _resolve_subject(
    client: Client, spine: SubjectSpine, database: str, registry: SchemaSource | None
) -> ResolvedSpine:
    paths = [*spine.entities.values(), *spine.labels.values()]
    upcast = _upcast_reads(registry, spine.subject, paths) if registry is not None else {}
    resolved = ResolvedSpine(
        kind="subject",
        source=spine.subject,
        entities=dict(spine.entities),
        start=spine.start,
        end=spine.end,
        upcast=upcast,
    )
    count = client.query(
        f"SELECT count() FROM `{database}`.`events` WHERE subject = {{s:String}}",
        parameters={"s": spine.subject},
    ).result_rows[0][0]
    if not count:
        raise ResourceNotFound(f"spine subject {spine.subject!r} has no events")
    if not spine.labels:
        return resolved
    stored = [p for p in spine.labels.values() if p not in upcast]
    types = {
        str(key): list(kinds)
        for key, kinds in (
            client.query(sql.label_types_sql(resolved, database, stored)).result_rows
            if stored
            else []
        )
    }
    return ResolvedSpine(
        kind="subject",
        source=spine.subject,
        entities=resolved.entities,
        labels=tuple(
            LabelColumn(
                name,
                path,
                _upcast_label_type(registry, spine.subject, path)
                if registry is not None and path in upcast
                else label_type(types.get(path, [])),
            )
            for name, path in spine.labels.items()
        ),
        upcast=upcast,
        start=spine.start,
        end=spine.end,
    )
