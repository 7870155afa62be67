"""Every SQL statement of training-set extraction, from one set of templates.

The extraction is one ClickHouse query that runs as-is in clickhouse-client against the
same tables. Its shape, one named CTE per step:

``spine``
    the rows to label: ``observation_id``, ``observed_at``, one column per entity type,
    the label columns.
``<group>`` (lifetime features, and windowed counts and integer sums)
    ``<group>__running``: the features' aggregates (``-If`` over events only) evaluated as
    running window functions over the entity's events in (occurred_at, ingested_at,
    source position, event_id) order, with the spine rows sorted in before the events at
    their time (and again at observed_at - window for a windowed total); ``<group>``: the
    values on each spine row's rows. Linear in events + spine rows, whatever the skew: a
    hot entity is one sorted run, never a cross product. (An aggregate without an ``-If``
    form: one history row per entity and time and an ``ASOF LEFT JOIN`` of the spine.)
``<group>`` (windowed distinct counts)
    a running sum of +1 when a value is seen and -1 when its span in the window ends,
    with the spine rows sorted in.
``<group>`` (other windowed features)
    the events of the entity in [observed_at - window, observed_at), matched through
    window-sized time buckets (each spine row looks at two buckets), then aggregated per
    spine row. The work per row is bounded by the events of two windows, never the
    entity's whole history.
final ``SELECT``
    the spine ``LEFT JOIN`` each feature, with the feature's default (0 for count-like
    aggregates, NULL for value-like ones) where no event qualified.

Arrival-time mode orders and cuts by ``greatest(occurred_at, ingested_at)``: an event is
usable at t exactly when occurred_at < t and ingested_at < t.

User strings reach SQL only as quoted literals (:func:`literal`) or validated, quoted
identifiers (:func:`ident`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from clickhouse_connect.driver.binding import format_str, quote_identifier

from materializer.features._expr import (
    ORDER_COLUMNS_SQL,
    PLACEHOLDER0,
    column_names,
    fill_template,
    over_window,
    split_aggregates,
    split_arguments,
)
from materializer.features.sql import bucket_ms, floor_div_sql
from materializer.training._model import (
    OBSERVATION_ID,
    OBSERVED_AT,
    FeatureSpec,
    LabelColumn,
    ResolvedSpine,
    check_identifier,
)
from sluicegate.sqlgate import FunctionAllowlist

__all__ = [
    "audit_sql",
    "distinct_arguments",
    "hot_entities_sql",
    "is_invertible",
    "label_types_sql",
    "literal",
    "spine_query",
    "stats_sql",
    "training_set_sql",
    "value_types_sql",
]


_INDENT = "    "


def literal(value: str) -> str:
    """A ClickHouse string literal for ``value``."""
    return str(format_str(value))


def ident(name: str) -> str:
    """A quoted identifier for a validated name."""
    return str(quote_identifier(check_identifier(name, "column")))


def _json_path(column: str, path: str) -> str:
    """``column, 'a', 'b'``: the JSONExtract arguments addressing dotted ``path``."""
    return ", ".join([column, *(literal(part) for part in path.split("."))])


def json_key_expr(column: str, path: str) -> str:
    """An entity key read from JSON ``column`` at ``path`` as String: strings as they are,
    numbers and booleans as their JSON text, absent or null as NULL."""
    if path == "entity_key":
        return "entity_key"
    args = _json_path(column, path)
    return (
        f"multiIf(JSONType({args}) = 'String', JSONExtractString({args}), "
        f"JSONType({args}) IN ('Int64', 'UInt64', 'Double', 'Bool'), JSONExtractRaw({args}), "
        "NULL)"
    )


def _table(database: str, table: str) -> str:
    return f"{quote_identifier(database)}.{quote_identifier(table)}"


def _ms(column: str) -> str:
    return f"toUnixTimestamp64Milli({column})"


def _bucket(column: str, window_ms: int) -> str:
    """The window-sized bucket of a time column: floor(ms / window)."""
    return floor_div_sql(_ms(column), window_ms)


def _window_text(window_ms: int | None) -> str:
    if window_ms is None:
        return "lifetime"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if window_ms % size == 0:
            return f"window {window_ms // size}{unit}"
    return f"window {window_ms}ms"


def _comment(text: str) -> str:
    return " ".join(text.split())  # one line, so `--` covers all of it


# --------------------------------------------------------------------------- spine


def label_types_sql(spine: ResolvedSpine, database: str, label_paths: Sequence[str]) -> str:
    """JSON types seen per label key: ``(key, [JSONType, ...])`` rows.

    For an observations spine every key of ``labels`` is a label; for a subject spine
    ``label_paths`` are the payload fields to copy."""
    if spine.kind == "observations":
        return (
            "SELECT key, groupUniqArray(JSONType(labels, key)) AS types\n"
            f"FROM {_table(database, 'observations')} FINAL\n"
            "ARRAY JOIN JSONExtractKeys(labels) AS key\n"
            f"WHERE spine = {literal(spine.source)}\n"
            "GROUP BY key ORDER BY key"
        )
    selects = [
        f"SELECT {literal(path)} AS key, "
        f"groupUniqArray(JSONType({_json_path('payload', path)})) AS types\n"
        f"FROM {_table(database, 'events')} FINAL WHERE subject = {literal(spine.source)}"
        for path in label_paths
    ]
    return "\nUNION ALL\n".join(selects)


def _label_expr(column: str, path: str, ch_type: str) -> str:
    args = _json_path(column, path)
    if ch_type == "Nullable(String)":
        # strings as they are; anything else (objects, arrays, mixed types) as JSON text
        return (
            f"multiIf(JSONType({args}) = 'String', JSONExtractString({args}), "
            f"JSONType({args}) IN ('Null', ''), NULL, JSONExtractRaw({args}))"
        )
    return f"JSONExtract({args}, {literal(ch_type)})"


def _subject_key(spine: ResolvedSpine, path: str) -> str:
    """An entity key of a subject spine's event: a field read as the latest version gives
    its text (NULL stays NULL); a stored one is read from the JSON payload."""
    if path in spine.upcast:
        return f"toString({spine.upcast[path]})"
    return json_key_expr("payload", path)


def _subject_label(spine: ResolvedSpine, lbl: LabelColumn) -> str:
    """A label of a subject spine's event, as the label's type; a field read as the latest
    version that is no string (an array) comes as JSON text."""
    value = spine.upcast.get(lbl.source)
    if value is None:
        return _label_expr("payload", lbl.source, lbl.type)
    if lbl.type == "Nullable(String)":
        return f"if(toTypeName({value}) LIKE '%String%', toString({value}), toJSONString({value}))"
    return f"CAST({value} AS {lbl.type})"


def _spine_cte(spine: ResolvedSpine, database: str) -> str:
    lines: list[str] = []
    if spine.kind == "observations":
        lines.append(f"-- the rows to label: observations posted under spine {spine.source!r}")
        cols = [f"observation_id AS {OBSERVATION_ID}", f"observed_at AS {OBSERVED_AT}"]
        cols += [
            f"if(mapContains(entities, {literal(key)}), entities[{literal(key)}], NULL) "
            f"AS {ident(etype)}"
            for etype, key in spine.entities.items()
        ]
        cols += [
            f"{_label_expr('labels', lbl.source, lbl.type)} AS {ident(lbl.name)}"
            for lbl in spine.labels
        ]
        source = f"{_table(database, 'observations')} FINAL"
        where = [f"spine = {literal(spine.source)}"]
    else:
        lines.append(
            f"-- the rows to label: every event of subject {spine.source!r}, at its occurred_at"
        )
        cols = [f"event_id AS {OBSERVATION_ID}", f"occurred_at AS {OBSERVED_AT}"]
        cols += [f"{_subject_key(spine, path)} AS {ident(e)}" for e, path in spine.entities.items()]
        cols += [f"{_subject_label(spine, lbl)} AS {ident(lbl.name)}" for lbl in spine.labels]
        source = f"{_table(database, 'events')} FINAL"
        where = [f"subject = {literal(spine.source)}"]
    time_col = "observed_at" if spine.kind == "observations" else "occurred_at"
    if spine.start:
        where.append(f"{time_col} >= toDateTime64({literal(spine.start)}, 3, 'UTC')")
    if spine.end:
        where.append(f"{time_col} < toDateTime64({literal(spine.end)}, 3, 'UTC')")
    body = ",\n".join(f"{_INDENT * 2}{c}" for c in cols)
    lines += [
        "spine AS MATERIALIZED (",
        f"{_INDENT}SELECT",
        body,
        f"{_INDENT}FROM {source}",
        f"{_INDENT}WHERE " + f"\n{_INDENT}  AND ".join(where),
        ")",
    ]
    return "\n".join(lines)


def spine_query(spine: ResolvedSpine, database: str, select: str) -> str:
    """``select`` with the spine as a CTE named ``spine``."""
    return "\n".join(["WITH", _spine_cte(spine, database), select])


# --------------------------------------------------------------------------- features

_INVERTIBLE = {"count", "countIf", "sum", "sumIf"}
_INTEGER_TYPES = {f"{p}Int{n}" for p in ("", "U") for n in (8, 16, 32, 64, 128, 256)}


def is_invertible(f: FeatureSpec, value_type: str, functions: FunctionAllowlist) -> bool:
    """Whether a windowed feature's value over [t - w, t) is exactly the running total at
    t minus the one at t - w: one count/countIf/sum/sumIf call with an integer result
    (float sums are left to the direct evaluation, whose rounding matches online)."""
    template, calls = split_aggregates(f.value_agg, functions)
    if template != PLACEHOLDER0 or value_type not in _INTEGER_TYPES:
        return False
    (call,) = calls
    return call.name in _INVERTIBLE and not call.args.lstrip().upper().startswith("DISTINCT")


def distinct_arguments(
    features: Sequence[FeatureSpec], functions: FunctionAllowlist, arrival_time: bool
) -> dict[str, str]:
    """Windowed features that are one ``uniqExact(x)`` of one argument (``count(DISTINCT
    x)`` compiles to it), by name, with their argument: evaluated from the times each value
    is last seen (see :func:`_distinct_cte`), in event-time mode."""
    out: dict[str, str] = {}
    if arrival_time:
        return out
    for f in features:
        if f.window_ms is None:
            continue
        try:
            template, calls = split_aggregates(f.value_agg, functions)
        except ValueError:
            continue
        if template != PLACEHOLDER0 or calls[0].name != "uniqExact" or calls[0].params:
            continue
        if len(split_arguments(calls[0].args)) == 1:
            out[f.name] = calls[0].args
    return out


def value_types_sql(features: Sequence[FeatureSpec], database: str) -> str:
    """The result type of each feature's aggregation (one row, one column per feature)."""
    cols = ", ".join(f"toTypeName({f.value_agg})" for f in features)
    return f"SELECT {cols} FROM {_table(database, 'events')} WHERE 0"


@dataclass
class _Group:
    """Features computed by one pass over the same events: same subject, entity and filter
    (and, for windowed joins, the same window)."""

    cte: str
    entity_type: str
    subject: str
    entity_expr: str
    filter_expr: str
    window_ms: int | None = None  # windowed joins only
    features: list[FeatureSpec] = field(default_factory=list)
    differences: dict[str, str] = field(default_factory=dict)  # name -> value type
    distinct: str | None = None  # a windowed distinct count's argument (its own group)


def plan_groups(
    features: Sequence[FeatureSpec],
    differences: Mapping[str, str],
    arrival_time: bool,
    distinct: Mapping[str, str] | None = None,
) -> list[_Group]:
    """Running groups (lifetime features and windowed running differences), one group per
    windowed distinct count (``distinct``: see :func:`distinct_arguments`) and windowed
    join groups, in first-use order."""
    groups: dict[tuple[object, ...], _Group] = {}
    for f in features:
        running = f.window_ms is None or (f.name in differences and not arrival_time)
        window = None if running else f.window_ms
        argument = (distinct or {}).get(f.name)
        key: tuple[object, ...] = (running, f.subject, f.entity_type, f.entity_expr)
        key += (f.filter_expr, window) if argument is None else ("distinct", f.name)
        group = groups.get(key)
        if group is None:
            kind = "running" if running else f"window_{_window_text(window)[7:]}"
            group = _Group(
                f"{f.entity_type}_{kind}_{len(groups) + 1}",
                f.entity_type,
                f.subject,
                f.entity_expr,
                f.filter_expr,
                window,
                distinct=argument,
            )
            groups[key] = group
        group.features.append(f)
        if running and f.window_ms is not None:
            group.differences[f.name] = differences[f.name]
    return list(groups.values())


def _events_where(g: _Group, indent: str, spine: bool = True) -> str:
    """The events a group reads: its subject and filter, for the spine's entities, before
    the spine's last time (later events can never be used). Without ``spine``, the
    subject and filter only (for a MATERIALIZED CTE, which may not read another one)."""
    where = f"{indent}WHERE subject = {literal(g.subject)}\n{indent}  AND ({g.filter_expr})"
    if not spine:
        return where
    return (
        f"{where}\n"
        f"{indent}  AND entity IN (SELECT {ident(g.entity_type)} FROM spine)\n"
        f"{indent}  AND occurred_at < (SELECT max({OBSERVED_AT}) FROM spine)"
    )


def _describe(f: FeatureSpec) -> str:
    return (
        f"--   {f.label}: {_comment(f.aggregation or f.value_agg)}, "
        f"{_window_text(f.window_ms)}; no events -> {f.default_sql}"
    )


def _group_header(g: _Group) -> list[str]:
    where = "" if g.filter_expr.strip() in ("", "1") else f" where {_comment(g.filter_expr)}"
    return [f"-- per {g.entity_type}, from {g.subject}{where}:", *map(_describe, g.features)]


def _running_ctes(
    g: _Group, database: str, arrival_time: bool, functions: FunctionAllowlist
) -> str:
    """Each feature's aggregate as a running window function over the entity's events;
    one history row per entity and time; an ASOF join per spine row (and per window of a
    running difference)."""
    values = [f"{over_window(f.value_agg, 'running', functions)} AS r_{f.name}" for f in g.features]
    if arrival_time:
        at = "greatest(occurred_at, ingested_at)"
        order = f"{at}, {ORDER_COLUMNS_SQL}"
        cols = [
            f"{g.entity_expr} AS entity",
            f"{at} AS at",
            "occurred_at, ingested_at, source_lsn, event_id",
            *values,
            "max(occurred_at) OVER running AS r_last_occurred",
            "max(ingested_at) OVER running AS r_last_ingested",
        ]
        lineage = ["r_last_occurred AS last_occurred_at", "r_last_ingested AS last_ingested_at"]
        cut = "the values once every event known (occurred and ingested) by then is in"
    else:
        order = ORDER_COLUMNS_SQL
        cols = [
            f"{g.entity_expr} AS entity",
            "occurred_at AS at",
            "ingested_at, source_lsn, event_id",
            *values,
        ]
        lineage = ["at AS last_occurred_at"]
        cut = "the values once every event at that time is in"
    cols.append(
        "leadInFrame(toNullable(at)) OVER (PARTITION BY entity ORDER BY "
        f"{order} ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS next_at"
    )
    history = ["entity", "at", *(f"r_{f.name} AS v_{f.name}" for f in g.features), *lineage]
    key = ident(g.entity_type)
    windows = sorted({f.window_ms for f in g.features if f.window_ms is not None})
    starts = [f"{OBSERVED_AT} - toIntervalMillisecond({w}) AS start_{w}" for w in windows]
    out = ["s.observation_id AS observation_id"]
    for f in g.features:
        if f.window_ms is None:
            out.append(f"h.v_{f.name} AS {f.name}")
            out.append(f"h.last_occurred_at AS {f.name}__last_occurred_at")
        else:
            w = f.window_ms
            out.append(
                f"CAST(coalesce(h.v_{f.name}, 0) - coalesce(b_{w}.v_{f.name}, 0) "
                f"AS {g.differences[f.name]}) AS {f.name}"
            )
            out.append(
                f"if(h.at >= s.start_{w}, h.last_occurred_at, NULL) AS {f.name}__last_occurred_at"
            )
        if arrival_time:
            out.append(f"h.last_ingested_at AS {f.name}__last_ingested_at")
    joins = [
        f"{_INDENT}ASOF LEFT JOIN {g.cte}__history AS h",
        f"{_INDENT * 2}ON h.entity = s.{key} AND s.{OBSERVED_AT} > h.at",
    ]
    for w in windows:
        joins += [
            f"{_INDENT}ASOF LEFT JOIN {g.cte}__history AS b_{w}",
            f"{_INDENT * 2}ON b_{w}.entity = s.{key} AND s.start_{w} > b_{w}.at",
        ]
    what = "the last history row strictly before observed_at"
    if windows:
        what += (
            " and, for windowed totals, the one strictly before observed_at - window"
            " (the difference counts the events in the window)"
        )
    return "\n".join(
        [
            *_group_header(g),
            f"-- running values after each event, in ({order}) order",
            f"{g.cte}__running AS (",
            f"{_INDENT}SELECT",
            ",\n".join(f"{_INDENT * 2}{c}" for c in cols),
            f"{_INDENT}FROM {_table(database, 'events')} FINAL",
            _events_where(g, _INDENT),
            f"{_INDENT}WINDOW running AS (PARTITION BY entity ORDER BY {order}",
            f"{_INDENT * 4}ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
            "),",
            f"-- one row per {g.entity_type} and time: {cut}",
            f"{g.cte}__history AS (",
            f"{_INDENT}SELECT " + ", ".join(history),
            f"{_INDENT}FROM {g.cte}__running",
            f"{_INDENT}WHERE next_at IS NULL OR next_at != at  -- the last event at that time",
            "),",
            f"-- each spine row takes {what}",
            f"{g.cte} AS (",
            f"{_INDENT}SELECT",
            ",\n".join(f"{_INDENT * 2}{c}" for c in out),
            f"{_INDENT}FROM (SELECT observation_id, {OBSERVED_AT}, {key}"
            + "".join(f", {st}" for st in starts)
            + " FROM spine) AS s",
            *joins,
            ")",
        ]
    )


def _merged_running_ctes(
    g: _Group,
    database: str,
    arrival_time: bool,
    functions: FunctionAllowlist,
    event_types: Mapping[str, str],
) -> str | None:
    """The running group in one pass: the spine rows (at observed_at, and at observed_at -
    window for each window of a running difference) sorted in with the entity's events,
    a spine row before the events at its own time; the running values on a spine row are
    those of the events strictly before it. One sort of events + spine rows, no history
    table and no joins against it (the full-scale bench/training.py extraction: 79 -> 54 s).
    None when an aggregate has no ``-If`` form (the caller falls back to
    :func:`_running_ctes`)."""
    event = "_ev = 1"
    # each distinct aggregate call once, as a running window column r_<i> (ClickHouse
    # 26.9 computes two identical -If window functions inconsistently: one came back empty)
    calls: dict[str, str] = {}
    values: list[tuple[FeatureSpec, str, list[str]]] = []  # feature, template, its columns
    used = {"occurred_at", "ingested_at", "source_lsn", "event_id"}
    for f in g.features:
        template, aggregates = split_aggregates(f.value_agg, functions)
        forms = [a.if_sql(event) for a in aggregates]
        if any(form is None for form in forms) or column_names(template) & set(event_types):
            return None  # no -If form, or the expression reads a column outside its calls
        names = [calls.setdefault(str(form), f"r_{len(calls)}") for form in forms]
        values.append((f, template, names))
        used |= column_names(f.value_agg)
    columns = [c for c in event_types if c in used]
    at = "greatest(occurred_at, ingested_at)" if arrival_time else "occurred_at"
    key = ident(g.entity_type)
    windows = sorted({f.window_ms for f in g.features if f.window_ms is not None})
    defaults = ", ".join(f"defaultValueOfTypeName({literal(event_types[c])})" for c in columns)
    marks = [(0, OBSERVED_AT)] + [
        (i + 1, f"{OBSERVED_AT} - toIntervalMillisecond({w})") for i, w in enumerate(windows)
    ]
    union = [
        f"{_INDENT * 3}SELECT {g.entity_expr} AS entity, {at} AS at, toUInt8(1) AS _ev, "
        f"'' AS observation_id, toUInt8(0) AS _mark, {', '.join(columns)}",
        f"{_INDENT * 3}FROM {_table(database, 'events')} FINAL",
        _events_where(g, _INDENT * 3),
    ]
    for mark, when in marks:
        union += [
            f"{_INDENT * 3}UNION ALL",
            f"{_INDENT * 3}SELECT assumeNotNull({key}), {when}, toUInt8(0), observation_id, "
            f"toUInt8({mark}), {defaults}",
            f"{_INDENT * 3}FROM spine WHERE {key} IS NOT NULL",
        ]
    lineage = [f"maxIf(occurred_at, {event}) OVER running AS r_last_occurred"]
    if arrival_time:
        lineage.append(f"maxIf(ingested_at, {event}) OVER running AS r_last_ingested")
    running = [
        "observation_id, _mark, _ev, at",
        *(f"{form} OVER running AS {name}" for form, name in calls.items()),
        f"countIf({event}) OVER running AS r_n",
        *lineage,
    ]
    on_spine = ["observation_id, _mark, at, r_n", *(c.split(" AS ")[-1] for c in lineage)]
    # per spine row: the calls on its row at observed_at (e_*) and, for a windowed total,
    # on its row at observed_at - window (s<mark>_*); the expressions are computed from
    # them only for rows with events (an expression need not hold for no events at all)
    picked = ["observation_id", "anyIf(r_last_occurred, _mark = 0) AS last_occurred"]
    if arrival_time:
        picked.append("anyIf(r_last_ingested, _mark = 0) AS last_ingested")
    picked += [f"anyIf({name}, _mark = 0) AS e_{name}" for name in calls.values()]
    out = ["observation_id"]
    for f, template, names in values:
        end = fill_template(template, [f"e_{n}" for n in names])
        if f.window_ms is None:
            out.append(f"{end} AS {f.name}")
            out.append(f"last_occurred AS {f.name}__last_occurred_at")
        else:
            mark = windows.index(f.window_ms) + 1
            picked += [f"anyIf({n}, _mark = {mark}) AS s{mark}_{n}" for n in names]
            picked.append(f"anyIf(at, _mark = {mark}) AS start_{mark}")
            begin = fill_template(template, [f"s{mark}_{n}" for n in names])
            out.append(f"CAST(({end}) - ({begin}) AS {g.differences[f.name]}) AS {f.name}")
            out.append(
                f"if(last_occurred >= start_{mark}, last_occurred, NULL) "
                f"AS {f.name}__last_occurred_at"
            )
        if arrival_time:
            out.append(f"last_ingested AS {f.name}__last_ingested_at")
    picked = list(dict.fromkeys(picked))
    order = f"at, _ev, {ORDER_COLUMNS_SQL}"
    what = "observed_at" + (" and at observed_at - window (for windowed totals)" if windows else "")
    return "\n".join(
        [
            *_group_header(g),
            f"-- the spine rows (at {what}) sorted in with the events in ({order}) order:",
            "-- the running values on a spine row are those of the events strictly before it",
            f"{g.cte}__running AS (",
            f"{_INDENT}SELECT " + ", ".join([*on_spine, *calls.values()]),
            f"{_INDENT}FROM (",
            f"{_INDENT * 2}SELECT",
            ",\n".join(f"{_INDENT * 3}{c}" for c in running),
            f"{_INDENT * 2}FROM (",
            *union,
            f"{_INDENT * 2})",
            f"{_INDENT * 2}WINDOW running AS (PARTITION BY entity ORDER BY {order}",
            f"{_INDENT * 5}ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
            f"{_INDENT})",
            f"{_INDENT}WHERE _ev = 0",
            "),",
            "-- each spine row with events before it: the values on its rows (a running",
            "-- difference: the row at observed_at minus the one at observed_at - window)",
            f"{g.cte} AS (",
            f"{_INDENT}SELECT",
            ",\n".join(f"{_INDENT * 2}{c}" for c in out),
            f"{_INDENT}FROM (",
            f"{_INDENT * 2}SELECT " + ", ".join(picked),
            f"{_INDENT * 2}FROM {g.cte}__running",
            f"{_INDENT * 2}GROUP BY observation_id",
            f"{_INDENT * 2}HAVING anyIf(r_n, _mark = 0) > 0",
            f"{_INDENT})",
            ")",
        ]
    )


def _direct_select(
    g: _Group, database: str, arrival_time: bool, cold: str | None = None
) -> list[str]:
    """The events in [observed_at - window, observed_at) of each spine row's entity, found
    through window-sized time buckets, aggregated per spine row; ``cold``, an SQL condition
    on ``entity``, restricts the entities."""
    w = g.window_ms
    assert w is not None
    conditions = [
        f"{_ms('e.occurred_at')} >= {_ms('s.' + OBSERVED_AT)} - {w}",
        f"e.occurred_at < s.{OBSERVED_AT}",
    ]
    out = ["s.observation_id AS observation_id"]
    for f in g.features:
        out.append(f"{f.value_agg} AS {f.name}")
        out.append(f"max(e.occurred_at) AS {f.name}__last_occurred_at")
        out.append(f"min(e.occurred_at) AS {f.name}__first_occurred_at")
    if arrival_time:
        conditions.append(f"e.ingested_at < s.{OBSERVED_AT}")
        out += [f"max(e.ingested_at) AS {f.name}__last_ingested_at" for f in g.features]
    # quarter-window buckets: a row looks at its bucket and the 4 before, so it reads
    # at most 1.25 windows of its entity's events
    parts = 4 if w % 4 == 0 else 1
    size = w // parts
    bucket = _bucket(OBSERVED_AT, size)
    return [
        f"-- the events of each spine row's {g.entity_type} in [observed_at - "
        f"{_window_text(w)[7:]}, observed_at), found through time buckets of "
        f"{_window_text(size)[7:]}",
        f"-- (the row's bucket and the {parts} before)",
        f"{_INDENT}SELECT",
        ",\n".join(f"{_INDENT * 2}{c}" for c in out),
        f"{_INDENT}FROM (",
        f"{_INDENT * 2}SELECT *, {g.entity_expr} AS entity, "
        f"{_bucket('occurred_at', size)} AS bucket",
        f"{_INDENT * 2}FROM {_table(database, 'events')} FINAL",
        _events_where(g, _INDENT * 2),
        *([f"{_INDENT * 2}  AND {cold}"] if cold else []),
        f"{_INDENT}) AS e",
        f"{_INDENT}INNER JOIN (",
        f"{_INDENT * 2}SELECT observation_id, {OBSERVED_AT}, {ident(g.entity_type)} AS entity,",
        f"{_INDENT * 3}arrayJoin(range({bucket} - {parts}, {bucket} + 1)) AS bucket",
        f"{_INDENT * 2}FROM spine",
        f"{_INDENT}) AS s ON e.entity = s.entity AND e.bucket = s.bucket",
        f"{_INDENT}WHERE " + f"\n{_INDENT}  AND ".join(conditions),
        f"{_INDENT}GROUP BY s.observation_id",
    ]


# An entity is hot when its events per window average more than this: its spine rows read
# pre-aggregated states instead of every event of the window.
HOT_EVENTS_PER_WINDOW = 1024


def _floor_sql(ms_sql: str, size: int) -> str:
    return f"{floor_div_sql(ms_sql, size)} * {size}"


def _ceil_sql(ms_sql: str, size: int) -> str:
    return f"-{floor_div_sql(f'-({ms_sql})', size)} * {size}"


def _keys_sql(parts: Sequence[tuple[str, str]], size: int) -> str:
    """The distinct ``size``-bucket indices the ranges [lo, hi) of ``parts`` touch."""
    ranges = [
        f"if({lo} < {hi}, range({floor_div_sql(lo, size)}, "
        f"{floor_div_sql(f'({hi} - 1)', size)} + 1), [])"
        for lo, hi in parts
    ]
    return ranges[0] if len(ranges) == 1 else f"arrayDistinct(arrayConcat({', '.join(ranges)}))"


def _bucketed_ctes(
    g: _Group, database: str, functions: FunctionAllowlist, hot: str
) -> tuple[list[str], list[str]]:
    """The hot entities' spine rows: the window [t - w, t) split into whole buckets of
    ``B`` (the online store's size for the window), whole fine buckets of ``B / 60`` at its
    two ends, and single events in the partial fine buckets at its very ends, each read as
    aggregate states and merged per spine row. A row reads at most ~w/B + 120 states and
    two fine buckets of events, however many events its entity has. -> (CTEs, SELECT)."""
    w = g.window_ms
    assert w is not None
    b = bucket_ms(w)
    f_size = b // 60
    p_size = -(-w // b) * b  # coarse rows are found by window-sized partitions of this
    calls = []  # (column, AggregateCall) per aggregate call of each feature
    templates = {}
    for i, f in enumerate(g.features):
        template, fcalls = split_aggregates(f.value_agg, functions)
        names = [f"s{i}_{j}" for j in range(len(fcalls))]
        calls += list(zip(names, fcalls, strict=True))
        templates[f.name] = (template, names)
    ms = _ms("occurred_at")
    fine_states = [f"{call.state_sql()} AS {col}" for col, call in calls]
    coarse_states = [f"{call.merge_state_sql(col)} AS {col}" for col, call in calls]
    cols = ", ".join(col for col, _ in calls)
    key = ident(g.entity_type)
    t = _ms(OBSERVED_AT)
    bounds = [
        f"{t} AS t",
        f"t - {w} AS low",
        f"{_ceil_sql('low', f_size)} AS lo_f0",
        f"{_floor_sql('t', f_size)} AS hi_f0",
        "if(lo_f0 < hi_f0, lo_f0, t) AS lo_f",
        "if(lo_f0 < hi_f0, hi_f0, t) AS hi_f",
        f"{_ceil_sql('lo_f', b)} AS lo0",
        f"{_floor_sql('hi_f', b)} AS hi0",
        "if(lo0 < hi0, lo0, hi_f) AS lo",
        "if(lo0 < hi0, hi0, hi_f) AS hi",
    ]
    c = g.cte
    ctes = [
        f"-- the hot {g.entity_type}s' events as states per fine bucket "
        f"({_window_text(f_size)[7:]}), per bucket ({_window_text(b)[7:]}), and each spine "
        "row's window bounds",
        f"{c}__fine AS MATERIALIZED (",
        f"{_INDENT}SELECT entity, {_floor_sql(ms, f_size)} AS slot, "
        + ", ".join(fine_states)
        + ", max(occurred_at) AS mx, min(occurred_at) AS mn",
        f"{_INDENT}FROM (SELECT *, {g.entity_expr} AS entity FROM {_table(database, 'events')}"
        " FINAL",
        _events_where(g, _INDENT * 2, spine=False),
        f"{_INDENT * 2}  AND entity IN {hot})",
        f"{_INDENT}GROUP BY entity, slot",
        "),",
        f"{c}__coarse AS (",
        f"{_INDENT}SELECT entity, bucket AS slot, "
        + ", ".join(coarse_states)
        + ", max(mx) AS mx, min(mn) AS mn",
        f"{_INDENT}FROM (SELECT *, {_floor_sql('slot', b)} AS bucket FROM {c}__fine)",
        f"{_INDENT}GROUP BY entity, bucket",
        "),",
        f"{c}__bounds AS (",
        f"{_INDENT}SELECT observation_id, {key} AS entity, " + ", ".join(bounds),
        f"{_INDENT}FROM spine WHERE {key} IN {hot}",
        "),",
    ]
    raw_cond = "(e.ms >= s.low AND e.ms < s.lo_f OR e.ms >= s.hi_f AND e.ms < s.t)"
    pieces = [
        # whole buckets inside the window
        f"{_INDENT * 2}SELECT s.observation_id AS observation_id, {cols}, mx, mn "
        f"FROM {c}__coarse AS x",
        f"{_INDENT * 2}INNER JOIN (SELECT observation_id, entity, lo, hi, arrayJoin("
        f"{_keys_sql([('lo', 'hi')], p_size)}) AS k FROM {c}__bounds) AS s",
        f"{_INDENT * 2}ON x.entity = s.entity AND {floor_div_sql('x.slot', p_size)} = s.k",
        f"{_INDENT * 2}WHERE x.slot >= s.lo AND x.slot < s.hi",
        f"{_INDENT * 2}UNION ALL",
        # whole fine buckets at the ends
        f"{_INDENT * 2}SELECT s.observation_id AS observation_id, {cols}, mx, mn "
        f"FROM {c}__fine AS x",
        f"{_INDENT * 2}INNER JOIN (SELECT observation_id, entity, lo_f, lo, hi, hi_f, arrayJoin("
        f"{_keys_sql([('lo_f', 'lo'), ('hi', 'hi_f')], b)}) AS k FROM {c}__bounds) AS s",
        f"{_INDENT * 2}ON x.entity = s.entity AND {floor_div_sql('x.slot', b)} = s.k",
        f"{_INDENT * 2}WHERE (x.slot >= s.lo_f AND x.slot < s.lo OR x.slot >= s.hi "
        "AND x.slot < s.hi_f)",
        f"{_INDENT * 2}UNION ALL",
        # single events in the partial fine buckets at the very ends
        f"{_INDENT * 2}SELECT s.observation_id AS observation_id, "
        + ", ".join(f"{call.state_sql()} AS {col}" for col, call in calls)
        + ", max(e.occurred_at) AS mx, min(e.occurred_at) AS mn",
        f"{_INDENT * 2}FROM (SELECT *, {g.entity_expr} AS entity, {ms} AS ms "
        f"FROM {_table(database, 'events')} FINAL",
        _events_where(g, _INDENT * 3),
        f"{_INDENT * 3}  AND entity IN {hot}) AS e",
        f"{_INDENT * 2}INNER JOIN (SELECT observation_id, entity, t, low, lo_f, hi_f, arrayJoin("
        f"{_keys_sql([('low', 'lo_f'), ('hi_f', 't')], f_size)}) AS k FROM {c}__bounds) AS s",
        f"{_INDENT * 2}ON e.entity = s.entity AND {floor_div_sql('e.ms', f_size)} = s.k",
        f"{_INDENT * 2}WHERE {raw_cond}",
        f"{_INDENT * 2}GROUP BY s.observation_id",
    ]
    out = ["observation_id"]
    by_column = dict(calls)
    for f in g.features:
        template, names = templates[f.name]
        value = fill_template(template, (by_column[n].merge_sql(n) for n in names))
        out += [f"{value} AS {f.name}", f"max(mx) AS {f.name}__last_occurred_at"]
        out.append(f"min(mn) AS {f.name}__first_occurred_at")
    select = [
        f"-- the hot {g.entity_type}s' spine rows: the states of the window's whole buckets, "
        "whole fine buckets and end events",
        f"{_INDENT}SELECT " + ", ".join(out),
        f"{_INDENT}FROM (",
        *pieces,
        f"{_INDENT})",
        f"{_INDENT}GROUP BY observation_id",
    ]
    return ctes, select


def _distinct_cte(g: _Group, database: str) -> str:
    """A windowed distinct count from the times each value is seen: the value an event
    carries is in the window of every t in (its time, min(its value's next time, its time
    + w)], so the count at t is the number of events before t minus the number of those
    intervals ending before t: one running sum over those changes with the spine rows
    sorted in, linear in the events however they are spread over entities (a 10M-event
    group: 21.2 -> 10.0 s against an ASOF join of the spine to a table of the changes)."""
    w = g.window_ms
    assert w is not None and g.distinct is not None
    (f,) = g.features
    c = g.cte
    key = ident(g.entity_type)
    ms = _ms("occurred_at")
    return "\n".join(
        [
            *_group_header(g),
            f"-- each value's occurrences: the time it is seen and the end of the span it "
            f"counts (its next occurrence, or {_window_text(w)[7:]} later)",
            f"{c}__seen AS (",
            f"{_INDENT}SELECT entity, ms, if(next_ms IS NULL, ms + {w}, least(next_ms, ms + {w}))"
            " AS end_ms",
            f"{_INDENT}FROM (",
            f"{_INDENT * 2}SELECT *, {g.entity_expr} AS entity, {ms} AS ms, "
            f"({g.distinct}) AS value,",
            f"{_INDENT * 3}leadInFrame(toNullable(ms)) OVER (PARTITION BY entity, value "
            "ORDER BY ms ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS next_ms",
            f"{_INDENT * 2}FROM {_table(database, 'events')} FINAL",
            _events_where(g, _INDENT * 2),
            f"{_INDENT * 2}  AND value IS NOT NULL",
            f"{_INDENT})",
            "),",
            "-- the count of values in the window on each spine row: +1 when a value is seen, "
            "-1 when its span ends;",
            "-- a spine row sorts before the changes at its own time (it counts those strictly "
            "before)",
            f"{c}__history AS (",
            f"{_INDENT}SELECT observation_id, n, last_seen FROM (",
            f"{_INDENT * 2}SELECT observation_id, _ev, sum(delta) OVER running AS n, "
            "max(seen) OVER running AS last_seen",
            f"{_INDENT * 2}FROM (",
            f"{_INDENT * 3}SELECT entity, ms AS at, toUInt8(1) AS _ev, 1 AS delta, "
            f"toNullable(ms) AS seen, '' AS observation_id FROM {c}__seen",
            f"{_INDENT * 3}UNION ALL SELECT entity, end_ms, toUInt8(1), -1, NULL, '' "
            f"FROM {c}__seen",
            f"{_INDENT * 3}UNION ALL SELECT assumeNotNull({key}), {_ms(OBSERVED_AT)}, "
            f"toUInt8(0), 0, NULL, observation_id FROM spine WHERE {key} IS NOT NULL",
            f"{_INDENT * 2})",
            f"{_INDENT * 2}WINDOW running AS (PARTITION BY entity ORDER BY at, _ev "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
            f"{_INDENT})",
            f"{_INDENT}WHERE _ev = 0",
            "),",
            f"{c} AS (",
            f"{_INDENT}SELECT observation_id, CAST(n AS Nullable(UInt64)) AS {f.name},",
            f"{_INDENT * 2}fromUnixTimestamp64Milli(last_seen, 'UTC') AS "
            f"{f.name}__last_occurred_at,",
            f"{_INDENT * 2}CAST(NULL AS Nullable(DateTime64(3, 'UTC'))) AS "
            f"{f.name}__first_occurred_at",
            f"{_INDENT}FROM {c}__history",
            ")",
        ]
    )


def hot_entities_sql(g: _Group, database: str, hot_events: int) -> str:
    """The entities of a windowed group with more than ``hot_events`` events per window on
    average over their events (``count * w > hot_events * (last - first + w)``)."""
    w = g.window_ms
    assert w is not None
    ms = _ms("occurred_at")
    return (
        f"SELECT entity FROM (SELECT {g.entity_expr} AS entity, {ms} AS ms "
        f"FROM {_table(database, 'events')} FINAL\n"
        + _events_where(g, "", spine=False)
        + f"\n  AND entity IN (SELECT {ident(g.entity_type)} FROM spine))\n"
        f"GROUP BY entity HAVING count() * {w} > "
        f"{int(hot_events)} * toFloat64(max(ms) - min(ms) + {w})"
    )


def _windowed_cte(
    g: _Group,
    database: str,
    arrival_time: bool,
    functions: FunctionAllowlist,
    hot: Sequence[str],
) -> str:
    """A windowed group's values per spine row: event by event, except for the ``hot``
    entities, whose rows read bucket states (never in arrival-time mode: each event must
    also have arrived before observed_at, which no pre-aggregated state can tell)."""
    if arrival_time or not hot:
        return "\n".join(
            [
                *_group_header(g),
                f"{g.cte} AS (",
                *_direct_select(g, database, arrival_time),
                ")",
            ]
        )
    keys = "(" + ", ".join(literal(k) for k in sorted(hot)) + ")"
    ctes, bucketed = _bucketed_ctes(g, database, functions, keys)
    return "\n".join(
        [
            *_group_header(g),
            f"-- hot {g.entity_type}s (many events per window): {len(hot)}",
            *ctes,
            f"{g.cte} AS (",
            *_direct_select(g, database, False, f"entity NOT IN {keys}"),
            f"{_INDENT}UNION ALL",
            *bucketed,
            ")",
        ]
    )


def audit_columns(f: FeatureSpec, arrival_time: bool) -> list[str]:
    """Lineage columns kept per feature for the leakage audit."""
    cols = [f"{f.name}__last_occurred_at"]
    if f.window_ms is not None:
        cols.append(f"{f.name}__first_occurred_at")
    if arrival_time:
        cols.append(f"{f.name}__last_ingested_at")
    return cols


def training_set_sql(
    spine: ResolvedSpine,
    features: Sequence[FeatureSpec],
    *,
    database: str,
    arrival_time: bool,
    functions: FunctionAllowlist,
    audit: bool = False,
    differences: Mapping[str, str] | None = None,
    hot: Mapping[str, Sequence[str]] | None = None,
    event_types: Mapping[str, str] | None = None,
) -> str:
    """The extraction query. With ``audit``, each feature also returns the time range of
    the events it used (``<feature>__last_occurred_at`` ...), which :func:`audit_sql` checks.
    ``differences`` maps windowed features whose value is a difference of running totals
    (see :func:`is_invertible`) to their value type. ``hot`` maps windowed groups (their
    CTE name, see :func:`plan_groups`) to the entities whose rows read bucket states
    (:func:`hot_entities_sql` finds them). ``event_types`` (the `events` table's columns
    and their types, in table order) lets running groups sort the spine rows in with the
    events (:func:`_merged_running_ctes`); without it they join a history table."""
    mode = (
        "arrival time: events with occurred_at < observed_at AND ingested_at < observed_at"
        if arrival_time
        else "event time: events with occurred_at < observed_at"
    )
    header = [
        "-- Sluicegate training set: each spine row with its features as they were just",
        "-- before observed_at.",
        f"-- Mode: {mode};",
        "-- windowed features also need occurred_at >= observed_at - window. Ties on",
        "-- occurred_at are taken in (ingested_at, source LSN, event_id) order. No",
        "-- qualifying event: 0 for count-like features, NULL for value-like ones.",
        f"-- Features: {', '.join(f.label for f in features)}",
    ]
    distinct = distinct_arguments(features, functions, arrival_time)
    groups = plan_groups(features, differences or {}, arrival_time, distinct)
    ctes = [_spine_cte(spine, database)]
    for g in groups:
        if g.window_ms is None:
            merged = None
            if event_types:
                merged = _merged_running_ctes(g, database, arrival_time, functions, event_types)
            ctes.append(merged or _running_ctes(g, database, arrival_time, functions))
        elif g.distinct is not None:
            ctes.append(_distinct_cte(g, database))
        else:
            ctes.append(
                _windowed_cte(g, database, arrival_time, functions, (hot or {}).get(g.cte, ()))
            )
    owner = {f.name: g.cte for g in groups for f in g.features}
    select = [f"s.{ident(c)} AS {ident(c)}" for c in spine.columns]
    for f in features:
        value = f"{owner[f.name]}.{ident(f.name)}"
        expr = value if f.default_sql == "NULL" else f"coalesce({value}, {f.default_sql})"
        select.append(f"{expr} AS {ident(f.name)}")
    if audit:
        for f in features:
            for col in audit_columns(f, arrival_time):
                source = owner[f.name]
                if (
                    col.endswith("__first_occurred_at")
                    and (f.name in (differences or {}) or f.name in distinct)
                    and not arrival_time
                ):
                    # a running difference uses exactly the events after the window start
                    select.append(f"CAST(NULL AS Nullable(DateTime64(3, 'UTC'))) AS {ident(col)}")
                else:
                    select.append(f"{source}.{ident(col)} AS {ident(col)}")
    joins = [f"LEFT JOIN {g.cte} ON {g.cte}.observation_id = s.observation_id" for g in groups]
    return "\n".join(
        [
            *header,
            "WITH",
            ",\n".join(ctes),
            "SELECT",
            ",\n".join(f"{_INDENT}{c}" for c in select),
            "FROM spine AS s",
            *joins,
            *([] if audit else [f"ORDER BY {OBSERVED_AT}, {OBSERVATION_ID}"]),
            "SETTINGS join_use_nulls = 1",
        ]
    )


def audit_sql(table: str, features: Sequence[FeatureSpec], *, arrival_time: bool) -> str:
    """The leakage audit over a materialized extraction (``table`` holds the audit columns):
    per feature, the rows whose value used an event at or after observed_at (by occurred_at;
    in arrival-time mode also by ingested_at) or before the window. Every count must be 0."""
    parts = []
    for f in features:
        occurred = f"countIf({ident(f.name + '__last_occurred_at')} >= {OBSERVED_AT})"
        ingested = (
            f"countIf({ident(f.name + '__last_ingested_at')} >= {OBSERVED_AT})"
            if arrival_time
            else "0"
        )
        window = (
            f"countIf({_ms(ident(f.name + '__first_occurred_at'))} < "
            f"{_ms(OBSERVED_AT)} - {f.window_ms})"
            if f.window_ms is not None
            else "0"
        )
        latest = f"max({ident(f.name + '__last_occurred_at')})"
        parts.append(
            f"SELECT {literal(f.name)} AS feature,\n"
            f"{_INDENT}{occurred} AS used_event_at_or_after_t,\n"
            f"{_INDENT}{ingested} AS used_event_ingested_at_or_after_t,\n"
            f"{_INDENT}{window} AS used_event_before_window,\n"
            f"{_INDENT}countIf({ident(f.name + '__last_occurred_at')} IS NOT NULL)"
            " AS rows_with_events,\n"
            f"{_INDENT}{latest} AS latest_event_used\n"
            f"FROM {table}"
        )
    return "\nUNION ALL\n".join(parts)


def stats_sql(table: str, columns: Sequence[str]) -> str:
    """Row count, time range and the null rate of each of ``columns`` in ``table``."""
    rates = ", ".join(f"avg({ident(c)} IS NULL)" for c in columns) or "0"
    return (
        f"SELECT count() AS rows, min({OBSERVED_AT}) AS first, max({OBSERVED_AT}) AS last, "
        f"[{rates}] AS null_rates FROM {table}"
    )
