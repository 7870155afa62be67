"""Turning a spine description into a :class:`ResolvedSpine`: which entity types it has and
which type each label column is read as (from the JSON types its values actually have)."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from materializer.training import sql
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
    client: Client, spine: ObservationsSpine | SubjectSpine, database: str
) -> ResolvedSpine:
    """Look up what SQL generation needs to know about ``spine``."""
    try:
        if isinstance(spine, ObservationsSpine):
            return _resolve_observations(client, spine, database)
        return _resolve_subject(client, spine, database)
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


def _resolve_subject(client: Client, spine: SubjectSpine, database: str) -> ResolvedSpine:
    resolved = ResolvedSpine(
        kind="subject",
        source=spine.subject,
        entities=dict(spine.entities),
        start=spine.start,
        end=spine.end,
    )
    count = client.query(
        f"SELECT count() FROM `{database}`.`events` WHERE subject = {{s:String}}",
        parameters={"s": spine.subject},
    ).result_rows[0][0]
    if not count:
        raise ResourceNotFound(f"spine subject {spine.subject!r} has no events")
    if not spine.labels:
        return resolved
    paths = list(spine.labels.values())
    types = {
        str(key): list(kinds)
        for key, kinds in client.query(sql.label_types_sql(resolved, database, paths)).result_rows
    }
    return ResolvedSpine(
        kind="subject",
        source=spine.subject,
        entities=resolved.entities,
        labels=tuple(
            LabelColumn(name, path, label_type(types.get(path, [])))
            for name, path in spine.labels.items()
        ),
        start=spine.start,
        end=spine.end,
    )
