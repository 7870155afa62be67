"""Every SQL statement the features package runs, generated from the templates below and
a :class:`CompiledFeature` — never written per feature.

Storage of one feature version (generation ``g``, bumped by a rebuild) is one table::

    f_<name>__v<version>g<g>     AggregatingMergeTree ORDER BY (entity, kind, slot)
        kind 0: one -State per aggregate call per time bucket (slot = bucket start, ms)
        kind 1: the same states per event time (slot = occurred_at, ms), kept (TTL) only
                as long as a window edge can need them
    ..._b_mv, ..._e_mv           the materialized views from `events` writing each kind

A sliding window [now - w, now) is answered exactly: the whole buckets inside it come from
kind 0, the two partial ends ([now - w, first whole bucket) and [last bucket end, now))
from kind 1 at millisecond precision, and all the states are merged together. Lifetime
features are the same with no lower end. Bucket sizes grow with the window so a read
merges at most a few dozen bucket rows plus the events of two partial buckets. One table
per feature and one (sub)query per feature keep a request to a single query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clickhouse_connect.driver.binding import format_query_value, quote_identifier

from materializer.features._expr import (
    _PLACEHOLDER,
    ORDER_COLUMNS_SQL,
    ORDER_KEY_SQL,
    AggregateCall,
)

if TYPE_CHECKING:
    from materializer.features.definition import CompiledFeature

PLACEHOLDER0 = _PLACEHOLDER.format(0)
DEFINITIONS_TABLE = "feature_definitions"
_BUCKETS_MS = (60_000, 300_000, 900_000, 3_600_000, 21_600_000, 86_400_000)
DAY_MS = 86_400_000


def lit(value: object) -> str:
    """A SQL literal (strings escaped by clickhouse-connect's own formatter)."""
    return str(format_query_value(value))


def ts_lit(ms: int) -> str:
    return f"fromUnixTimestamp64Milli(toInt64({int(ms)}), 'UTC')"


def bucket_ms(window_ms: int | None) -> int:
    """The bucket size of a window: the largest of 1m..1d giving at least 24 buckets
    (lifetime: 1 day)."""
    if window_ms is None:
        return DAY_MS
    fitting = [b for b in _BUCKETS_MS if window_ms // b >= 24]
    return fitting[-1] if fitting else _BUCKETS_MS[0]


def edge_ttl_s(window_ms: int | None) -> int:
    """How long per-event states must stay for window edges (plus a day of margin)."""
    return ((window_ms or 0) + 2 * bucket_ms(window_ms)) // 1000 + DAY_MS // 1000


# ----------------------------------------------------------------------------- set attribute


def set_aggregate(value_sql: str, filter_sql: str) -> tuple[AggregateCall, str]:
    """The aggregate of a set attribute: every event of the entity as (row key, event order,
    value, live), sorted; the last image of each row key is kept when live; its values come
    out distinct and sorted. -> (the aggregate call, the template around it)."""
    call = AggregateCall(
        "groupArray",
        None,
        f"tuple(entity_key, {ORDER_COLUMNS_SQL}, {value_sql}, "
        f"toUInt8(op != 'd' AND ({filter_sql})))",
    )
    rows = f"arraySort({PLACEHOLDER0})"
    template = (
        "arraySort(arrayDistinct(arrayMap(r -> tupleElement(r, 6), "
        "arrayFilter((r, next_key) -> tupleElement(r, 7) = 1 AND tupleElement(r, 1) != next_key, "
        f"{rows}, arrayPushBack(arrayPopFront(arrayMap(r -> tupleElement(r, 1), {rows})), '')"
        "))))"
    )
    return call, template


# ----------------------------------------------------------------------------- object names


@dataclass(frozen=True)
class Objects:
    """The ClickHouse objects of one feature version in one generation."""

    name: str
    version: int
    generation: int

    def _base(self) -> str:
        return f"f_{self.name}__v{self.version}g{self.generation}"

    @property
    def table(self) -> str:
        return self._base()

    def view(self, part: str) -> str:
        return f"{self._base()}_{part}_mv"

    def all(self) -> list[tuple[str, str]]:
        """(kind, name) in drop order: views first."""
        return [("VIEW", self.view("b")), ("VIEW", self.view("e")), ("TABLE", self.table)]


PARTS = ("b", "e")


# ----------------------------------------------------------------------------- DDL


def _state_columns(cf: CompiledFeature) -> str:
    return ", ".join(f"{a.state_sql()} AS s{i}" for i, a in enumerate(cf.aggregates))


def _slot(cf: CompiledFeature, part: str) -> tuple[int, str]:
    """(kind, slot expression) of a part: ``b`` buckets, ``e`` event times."""
    if part == "b":
        b = bucket_ms(cf.window_ms)
        return 0, f"intDiv(toUnixTimestamp64Milli(occurred_at), {b}) * {b}"
    return 1, "toUnixTimestamp64Milli(occurred_at)"


def state_select(cf: CompiledFeature, part: str, extra_where: str = "") -> str:
    """The SELECT turning `events` rows into states of ``part``: used by the views, the
    backfill, the table's column types and the dry run alike."""
    kind, slot = _slot(cf, part)
    where = f"subject = {lit(cf.subject)} AND ({cf.filter_expr})"
    if extra_where:
        where += f" AND {extra_where}"
    return (
        f"SELECT {cf.entity_expr} AS entity, toUInt8({kind}) AS kind, "
        f"toInt64({slot}) AS slot, {_state_columns(cf)} "
        f"FROM events WHERE {where} GROUP BY entity, slot"
    )


def create_table(cf: CompiledFeature, objs: Objects) -> str:
    """An empty AggregatingMergeTree whose state column types ClickHouse infers from the
    state SELECT itself (so they always match what the views write). Small granules make
    a point read decode few states; per-event rows expire once no window edge needs them;
    the deduplication window drops a replayed load of `events` here too."""
    ttl = edge_ttl_s(cf.window_ms)
    return (
        f"CREATE TABLE {quote_identifier(objs.table)} "
        f"ENGINE = AggregatingMergeTree ORDER BY (entity, kind, slot) "
        f"TTL toDateTime(intDiv(slot, 1000)) + INTERVAL {ttl} SECOND WHERE kind = 1 "
        f"SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 128 "
        f"EMPTY AS {state_select(cf, 'b')}"
    )


def create_view(cf: CompiledFeature, objs: Objects, part: str, t0_ms: int) -> str:
    """The materialized view feeding ``part`` with events loaded from ``t0_ms`` on; the
    backfill covers the events loaded before it, so each event is counted once."""
    return (
        f"CREATE MATERIALIZED VIEW {quote_identifier(objs.view(part))} "
        f"TO {quote_identifier(objs.table)} AS "
        f"{state_select(cf, part, f'loaded_at >= {ts_lit(t0_ms)}')}"
    )


def backfill_insert(cf: CompiledFeature, objs: Objects, part: str, t0_ms: int, month: int) -> str:
    """Fill ``part`` from the events of one month partition loaded before ``t0_ms``."""
    cond = f"loaded_at < {ts_lit(t0_ms)} AND toYYYYMM(occurred_at) = {int(month)}"
    return f"INSERT INTO {quote_identifier(objs.table)} {state_select(cf, part, cond)}"


def optimize(objs: Objects) -> str:
    """Merge a freshly backfilled table into few parts (cheaper point reads)."""
    return f"OPTIMIZE TABLE {quote_identifier(objs.table)} FINAL"


def backfill_months(subject: str, t0_ms: int) -> str:
    """(month, events) of a subject loaded before ``t0_ms``: the backfill's units of work."""
    return (
        f"SELECT toYYYYMM(occurred_at) AS month, count() AS n FROM events "
        f"WHERE subject = {lit(subject)} AND loaded_at < {ts_lit(t0_ms)} "
        f"GROUP BY month ORDER BY month"
    )


def drop(kind: str, name: str) -> str:
    return f"DROP {kind} IF EXISTS {quote_identifier(name)} SYNC"


def dry_run(cf: CompiledFeature) -> str:
    """Type-checks every expression of the feature without reading data."""
    return (
        f"SELECT {cf.entity_expr} AS entity, {cf.value_agg} AS value FROM events "
        f"WHERE 0 AND ({cf.filter_expr}) GROUP BY entity"
    )


def store_now() -> str:
    return "SELECT toUnixTimestamp64Milli(now64(3))"


# ----------------------------------------------------------------------------- online reads


def final_value(cf: CompiledFeature, condition: str | None = None) -> str:
    """The feature's value from merged state columns ``s0..sn`` (of the rows meeting
    ``condition``)."""
    merges = [a.merge_sql(f"s{i}", condition) for i, a in enumerate(cf.aggregates)]
    out = cf.template
    for i, m in enumerate(merges):
        out = out.replace(_PLACEHOLDER.format(i), m)
    return out


def window_condition(cf: CompiledFeature, now_ms: int) -> str:
    """Rows of the window [now - w, now) (lifetime: [-inf, now)): whole buckets (kind 0)
    plus the partial ends at event precision (kind 1)."""
    b = bucket_ms(cf.window_ms)
    hi = (now_ms // b) * b
    if cf.window_ms is None:
        return f"((kind = 0 AND slot < {hi}) OR (kind = 1 AND slot >= {hi} AND slot < {now_ms}))"
    low = now_ms - cf.window_ms
    lo = -(-low // b) * b
    if lo >= hi:
        return f"(kind = 1 AND slot >= {low} AND slot < {now_ms})"
    return (
        f"((kind = 0 AND slot >= {lo} AND slot < {hi}) OR "
        f"(kind = 1 AND ((slot >= {low} AND slot < {lo}) OR "
        f"(slot >= {hi} AND slot < {now_ms}))))"
    )


def online_value(cf: CompiledFeature, objs: Objects, keys: Sequence[str], now_ms: int) -> str:
    """A scalar subquery: the feature's values for ``keys`` as of ``now_ms``, as
    ``(entities, JSON values)``; entities without rows in the window are absent.

    The window is applied inside the aggregates (``-MergeIf``), not in WHERE: an entity's
    rows are few and contiguous in the primary key, and ClickHouse plans an OR of ranges
    in WHERE much more slowly than it merges them."""
    cond = window_condition(cf, now_ms)
    return (
        f"(SELECT (groupArray(entity), groupArray(v)) FROM (SELECT entity, "
        f"ifNull(toJSONString({final_value(cf, cond)}), 'null') AS v "
        f"FROM {quote_identifier(objs.table)} WHERE entity IN {lit(list(keys))} "
        f"GROUP BY entity HAVING countIf({cond}) > 0))"
    )


def online_value_one(cf: CompiledFeature, objs: Objects, key: str, now_ms: int) -> str:
    """A one-row SELECT: one entity's value as JSON, NULL without rows in the window."""
    cond = window_condition(cf, now_ms)
    return (
        f"SELECT if(countIf({cond}) = 0, NULL, toJSONString({final_value(cf, cond)})) "
        f"FROM {quote_identifier(objs.table)} WHERE entity = {lit(key)}"
    )


def online_query_one(selects: Sequence[str]) -> str:
    """One entity's features in one query: the one-row SELECTs side by side (a cross join
    of single rows, which ClickHouse plans as one pipeline)."""
    return "SELECT * FROM " + ", ".join(f"({q}) AS f{i}" for i, q in enumerate(selects))


def online_query(columns: Sequence[str]) -> str:
    """All features of a request in one query: one scalar subquery per feature."""
    return "SELECT " + ", ".join(columns)


def freshness(objs: Objects) -> str:
    """The time of the newest event a feature has seen (its per-event rows keep it)."""
    return f"SELECT max(slot), count() > 0 FROM {quote_identifier(objs.table)} WHERE kind = 1"


# ----------------------------------------------------------------------------- catalog


def select_definitions() -> str:
    return (
        f"SELECT name, version, generation, spec, status, owner, "
        f"toUnixTimestamp64Milli(created_at), toUnixTimestamp64Milli(updated_at) "
        f"FROM {DEFINITIONS_TABLE} FINAL ORDER BY name, version"
    )


__all__ = [
    "DEFINITIONS_TABLE",
    "ORDER_KEY_SQL",
    "PARTS",
    "PLACEHOLDER0",
    "Objects",
    "backfill_insert",
    "backfill_months",
    "bucket_ms",
    "create_table",
    "create_view",
    "drop",
    "dry_run",
    "final_value",
    "freshness",
    "lit",
    "online_query",
    "online_query_one",
    "online_value",
    "online_value_one",
    "optimize",
    "select_definitions",
    "set_aggregate",
    "state_select",
    "store_now",
    "window_condition",
]
