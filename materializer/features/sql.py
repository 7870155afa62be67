"""Every SQL statement the features package runs, generated from the templates below and
a :class:`CompiledFeature` — never written per feature.

Storage: one table per entity type, the states of all its features side by side::

    fs_<entity type>             AggregatingMergeTree ORDER BY (entity, kind, slot)
        kind 0: one -State per aggregate call per time bucket (slot = bucket start, ms)
        kind 1: the same states per event time (slot = occurred_at, ms)
        f_<name>__v<version>g<g>_s<i>   aggregate call i's states of one feature version
                                        (generation g, bumped by a rebuild)
        f_<name>__v<version>g<g>_n      its events per row (the window holds values iff > 0)
        ttl_s                           how long the row serves (TTL), the largest need
    f_<name>__v<version>g<g>_b_mv, ..._e_mv     the views from `events` writing each kind

A feature version adds its columns and views, and drops them when it goes: the others
are never rebuilt. Rows of different features at the same (entity, kind, slot) merge into
one; a feature's columns in another's rows hold empty states, which merge to nothing.

A sliding window [now - w, now) is answered exactly: the whole buckets inside it come from
kind 0, the two partial ends ([now - w, first whole bucket) and [last bucket end, now))
from kind 1 at millisecond precision, and all the states are merged together. Lifetime
features are the same with no lower end. Bucket sizes grow with the window so a read
merges at most a few dozen bucket rows per feature plus the events of two partial
buckets. A request for any features of an entity type — one key or a batch — is one read
of one table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clickhouse_connect.driver.binding import format_query_value, quote_identifier

from materializer.features._expr import (
    _PLACEHOLDER,
    ORDER_KEY_SQL,
)

if TYPE_CHECKING:
    from materializer.features.definition import CompiledFeature

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


def floor_div_sql(ms_sql: str, divisor: int) -> str:
    """``floor(ms / divisor)`` in SQL, as Python's ``//`` (the window arithmetic reads
    buckets that way): intDiv truncates toward zero, so negative remainders step down."""
    return f"(intDiv({ms_sql}, {divisor}) - ({ms_sql} % {divisor} < 0))"


def edge_ttl_s(window_ms: int | None) -> int:
    """How long per-event states must stay for window edges (plus a day of margin)."""
    return ((window_ms or 0) + 2 * bucket_ms(window_ms)) // 1000 + DAY_MS // 1000


# ----------------------------------------------------------------------------- object names


@dataclass(frozen=True)
class Objects:
    """The ClickHouse objects of one feature version in one generation: its columns in its
    entity type's table and the two views writing them."""

    name: str
    version: int
    generation: int
    entity_type: str

    @property
    def prefix(self) -> str:
        return f"f_{self.name}__v{self.version}g{self.generation}"

    @property
    def table(self) -> str:
        return entity_table(self.entity_type)

    def state(self, i: int) -> str:
        """The column of aggregate call ``i``'s states."""
        return f"{self.prefix}_s{i}"

    @property
    def presence(self) -> str:
        """The column counting the feature's events per row: a window holds values of the
        feature exactly when its sum there is above 0."""
        return f"{self.prefix}_n"

    def view(self, part: str) -> str:
        return f"{self.prefix}_{part}_mv"

    def views(self) -> list[str]:
        return [self.view(part) for part in PARTS]

    def owns(self, column: str) -> bool:
        """Whether ``column`` is one of this version's (exactly: another feature's name may
        start with this one's)."""
        return re.fullmatch(re.escape(self.prefix) + r"_(s\d+|n)", column) is not None


PARTS = ("b", "e")
# ttl_s of rows kept for ever (a lifetime feature's buckets): the largest DateTime
_FOREVER_S = 4_294_967_295


def entity_table(entity_type: str) -> str:
    """The table of every feature of ``entity_type`` (a snake_case name)."""
    return f"fs_{entity_type}"


# ----------------------------------------------------------------------------- DDL


# Small compressed blocks: a point read decompresses a block per column it reads, so with
# the defaults (64 KB - 1 MB) a batch of 100 keys read ~3x slower and a single key ~10%
_COMPRESS_BLOCKS = "min_compress_block_size = 4096, max_compress_block_size = 16384"


def create_entity_table(entity_type: str) -> str:
    """The table all features of ``entity_type`` keep their states in, side by side: an
    AggregatingMergeTree keyed by (entity, kind, slot), one group of columns per feature
    version (added and dropped with it), so an online read of any of them is one read of
    an entity's rows. A row expires (TTL) once no window edge of any feature writing it
    needs it: ``ttl_s`` is the largest of their needs. Small granules and compressed
    blocks make a point read decode little; the deduplication window drops a replayed
    load of `events` here too."""
    return (
        f"CREATE TABLE IF NOT EXISTS {quote_identifier(entity_table(entity_type))} "
        "(entity String, kind UInt8, slot Int64, ttl_s SimpleAggregateFunction(max, UInt32)) "
        "ENGINE = AggregatingMergeTree ORDER BY (entity, kind, slot) "
        f"TTL toDateTime(least(intDiv(slot, 1000) + ttl_s, {_FOREVER_S})) "
        "SETTINGS non_replicated_deduplication_window = 100000, index_granularity = 128, "
        f"{_COMPRESS_BLOCKS}"
    )


def entity_table_settings(table: str) -> str:
    """Bring a table made by an earlier release to the read layout's settings (for the
    parts written from then on; a rebuild or backfill rewrites the others)."""
    return f"ALTER TABLE {quote_identifier(table)} MODIFY SETTING {_COMPRESS_BLOCKS}"


def _slot(cf: CompiledFeature, part: str) -> tuple[int, str]:
    """(kind, slot expression) of a part: ``b`` buckets, ``e`` event times."""
    if part == "b":
        b = bucket_ms(cf.window_ms)
        return 0, f"{floor_div_sql('toUnixTimestamp64Milli(occurred_at)', b)} * {b}"
    return 1, "toUnixTimestamp64Milli(occurred_at)"


def _ttl_s(cf: CompiledFeature, part: str) -> int:
    """How long a row of ``part`` serves the feature: lifetime buckets for ever, the rest
    while a window edge can need them."""
    if part == "b" and cf.window_ms is None:
        return _FOREVER_S
    return edge_ttl_s(cf.window_ms)


Feature = tuple["CompiledFeature", Objects]


def fill_group(cf: CompiledFeature, part: str) -> tuple[str, ...]:
    """Features with the same group write the same rows of ``part`` (same subject, entity,
    filter and slot): one SELECT computes all their states."""
    return (cf.subject, cf.entity_expr, cf.filter_expr, _slot(cf, part)[1])


def _feature_columns(features: Sequence[Feature]) -> list[tuple[str, str]]:
    """(column, SQL) of the features' own columns: their states and presence counts."""
    out = []
    for cf, objs in features:
        out += [(objs.state(i), a.state_sql()) for i, a in enumerate(cf.aggregates)]
        out.append((objs.presence, "count()"))
    return out


def state_select(features: Sequence[Feature], part: str, extra_where: str = "") -> str:
    """The SELECT turning `events` rows into the rows of ``part`` of ``features`` (one
    :func:`fill_group`): used by the views, the backfill, the column types and the dry run
    alike."""
    first = features[0][0]
    kind, slot = _slot(first, part)
    where = f"subject = {lit(first.subject)} AND ({first.filter_expr})"
    if extra_where:
        where += f" AND {extra_where}"
    columns = [f"{sql} AS {name}" for name, sql in _feature_columns(features)]
    ttl = max(_ttl_s(cf, part) for cf, _ in features)
    return (
        f"SELECT {first.entity_expr} AS entity, toUInt8({kind}) AS kind, "
        f"toInt64({slot}) AS slot, {', '.join(columns)}, toUInt32({ttl}) AS ttl_s "
        f"FROM events WHERE {where} GROUP BY entity, slot"
    )


def describe_states(cf: CompiledFeature, objs: Objects) -> str:
    """The column types of the feature's rows (ClickHouse infers the state types)."""
    return f"DESCRIBE TABLE ({state_select([(cf, objs)], 'b', '0')})"


def add_columns(objs: Objects, types: Sequence[tuple[str, str]]) -> str:
    """Add the feature's state columns (``(name, type)``) and its presence count."""
    adds = [f"ADD COLUMN IF NOT EXISTS {quote_identifier(n)} {t}" for n, t in types]
    adds.append(
        f"ADD COLUMN IF NOT EXISTS {quote_identifier(objs.presence)} "
        "SimpleAggregateFunction(sum, UInt64)"
    )
    return f"ALTER TABLE {quote_identifier(objs.table)} {', '.join(adds)}"


def drop_columns(table: str, columns: Sequence[str]) -> str:
    drops = ", ".join(f"DROP COLUMN IF EXISTS {quote_identifier(c)}" for c in columns)
    return f"ALTER TABLE {quote_identifier(table)} {drops}"


def table_columns(table: str) -> str:
    """The columns of ``table`` (to find a feature version's by prefix)."""
    return (
        "SELECT name FROM system.columns WHERE database = currentDatabase() "
        f"AND table = {lit(table)}"
    )


def create_view(cf: CompiledFeature, objs: Objects, part: str, t0_ms: int) -> str:
    """The materialized view feeding ``part`` with events loaded from ``t0_ms`` on; the
    backfill covers the events loaded before it, so each event is counted once."""
    return (
        f"CREATE MATERIALIZED VIEW {quote_identifier(objs.view(part))} "
        f"TO {quote_identifier(objs.table)} AS "
        f"{state_select([(cf, objs)], part, f'loaded_at >= {ts_lit(t0_ms)}')}"
    )


def backfill_insert(features: Sequence[Feature], part: str, t0_ms: int, month: int) -> str:
    """Fill ``part`` of ``features`` (one :func:`fill_group`) from the events of one month
    partition loaded before ``t0_ms``: one INSERT writing all their columns."""
    cond = f"loaded_at < {ts_lit(t0_ms)} AND toYYYYMM(occurred_at) = {int(month)}"
    columns = ["entity", "kind", "slot", *(name for name, _ in _feature_columns(features)), "ttl_s"]
    return (
        f"INSERT INTO {quote_identifier(features[0][1].table)} "
        f"({', '.join(quote_identifier(c) for c in columns)}) "
        f"{state_select(features, part, cond)}"
    )


def optimize(table: str) -> str:
    """Merge a freshly backfilled table into few parts (cheaper point reads)."""
    return f"OPTIMIZE TABLE {quote_identifier(table)} FINAL"


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


def final_value(
    cf: CompiledFeature,
    condition: str | Sequence[str] | None = None,
    objs: Objects | None = None,
) -> str:
    """The feature's value from merged state columns (``objs``' columns, or ``s0..sn``)
    of the rows meeting ``condition`` (one for every aggregate call, or one each)."""
    n = len(cf.aggregates)
    conditions = [condition] * n if condition is None or isinstance(condition, str) else condition
    merges = [
        a.merge_sql(objs.state(i) if objs else f"s{i}", conditions[i])
        for i, a in enumerate(cf.aggregates)
    ]
    out = cf.template
    for i, m in enumerate(merges):
        out = out.replace(_PLACEHOLDER.format(i), m)
    return out


def window_condition(cf: CompiledFeature, now_ms: int) -> str:
    """Rows of the window [now - w, now) (lifetime: [-inf, now)) among the rows before now
    (an online read's WHERE keeps ``slot < now`` for every feature): the whole buckets
    inside it (kind 0, [lo, hi)) and the events of its partial ends (kind 1, [now - w, lo)
    and [hi, now)). Written as one range and one kind test, ``kind = (outside [lo, hi))``:
    ClickHouse plans a read in time proportional to its expression nodes, and this form
    has half the nodes of the union of three ranges it equals."""
    b = bucket_ms(cf.window_ms)
    hi = (now_ms // b) * b
    if cf.window_ms is None:
        return f"kind = (slot >= {hi})"
    low = now_ms - cf.window_ms
    lo = -(-low // b) * b
    if lo >= hi:  # no whole bucket inside: events only
        return f"(slot >= {low} AND kind = 1)"
    return f"(slot >= {low} AND kind = (slot < {lo} OR slot >= {hi}))"


# aggregates whose merge over no state is 0, the count-like default: a feature that is one
# of them needs no presence count to tell "no events in the window"
_ZERO_WHEN_EMPTY = re.compile(
    r"^(count|uniq|uniqExact|uniqCombined|uniqCombined64|uniqHLL12|sum|sumKahan|"
    r"sumWithOverflow)(If)?$"
)


def needs_presence(cf: CompiledFeature) -> bool:
    """Whether a read must count the feature's events in the window to give its default
    (NULL for value-like features) rather than the merge of no states."""
    return not (cf.default_sql == "0" and _ZERO_WHEN_EMPTY.match(cf.aggregates[0].name))


@dataclass(frozen=True)
class OnlineRead:
    """The SQL of one online request and how to unpack its rows: ``(entity, JSON array of
    the values, the presence counts of the features that need one)``."""

    sql: str
    presence: tuple[int | None, ...]  # per feature: its column among the counts, or None


def online_query(
    table: str,
    keys: Sequence[str],
    features: Sequence[tuple[CompiledFeature, Objects]],
    now_ms: int,
) -> OnlineRead:
    """Features of one entity type as of ``now_ms`` for ``keys``, in one read of its table:
    one row per key that has rows. The window is applied inside the merges (``-MergeIf``):
    an entity's rows are few and contiguous in the primary key, and ClickHouse plans an OR
    of key ranges in WHERE much more slowly than it merges them. ClickHouse plans a point
    read in time proportional to its expression nodes, so each distinct window is written
    once, as an alias at its first use (aliases are visible to the whole SELECT), and the
    ``slot < now`` all windows share is a condition of its own. Both are written as
    PREWHERE: ClickHouse would move them there itself, and deciding that is part of the
    planning (a read of 10 features about 10% faster at p50; batches of 100 keys the same).
    The values come back as one JSON array."""
    windows: dict[str, str] = {}
    values: list[str] = []
    counts: list[str] = []
    presence: list[int | None] = []

    def use(cond: str) -> str:
        """The window's alias; its definition the first time it is used."""
        if cond in windows:
            return windows[cond]
        windows[cond] = alias = f"_w{len(windows)}"
        return f"({cond} AS {alias})"

    for cf, objs in features:
        cond = window_condition(cf, now_ms)
        values.append(final_value(cf, [use(cond) for _ in cf.aggregates], objs))
        if needs_presence(cf):
            presence.append(len(counts))
            counts.append(f"sumIf({quote_identifier(objs.presence)}, {use(cond)})")
        else:
            presence.append(None)
    key = f"entity = {lit(keys[0])}" if len(keys) == 1 else f"entity IN {lit(list(keys))}"
    select = ", ".join(["entity", f"toJSONString(tuple({', '.join(values)}))", *counts])
    return OnlineRead(
        f"SELECT {select} FROM {quote_identifier(table)} PREWHERE {key} AND slot < {int(now_ms)} "
        "GROUP BY entity",
        tuple(presence),
    )


def freshness(objs: Objects) -> str:
    """The time of the newest event a feature has seen (its per-event rows keep it)."""
    return (
        f"SELECT max(slot), count() > 0 FROM {quote_identifier(objs.table)} "
        f"WHERE kind = 1 AND {quote_identifier(objs.presence)} > 0"
    )


def freshness_lag(subjects: Sequence[str]) -> str:
    """Per subject: how long its most recently loaded event took from acceptance
    (``ingested_at``) to `events` (``loaded_at``), and with it to every feature's views."""
    return (
        "SELECT subject, argMax(toUnixTimestamp64Milli(loaded_at) - "
        "toUnixTimestamp64Milli(ingested_at), (loaded_at, ingested_at)) FROM events "
        f"WHERE subject IN {lit(list(subjects))} GROUP BY subject"
    )


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
    "Objects",
    "OnlineRead",
    "add_columns",
    "backfill_insert",
    "backfill_months",
    "bucket_ms",
    "create_entity_table",
    "create_view",
    "describe_states",
    "drop",
    "drop_columns",
    "dry_run",
    "entity_table",
    "entity_table_settings",
    "fill_group",
    "final_value",
    "floor_div_sql",
    "freshness",
    "freshness_lag",
    "lit",
    "needs_presence",
    "online_query",
    "optimize",
    "select_definitions",
    "state_select",
    "store_now",
    "table_columns",
    "window_condition",
]
