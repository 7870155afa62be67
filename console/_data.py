"""What the console's pages show, read from the registry, the feature store and ClickHouse
(one query per page part, bounded by the page's rows). Every caller string reaches
ClickHouse as a bound parameter."""

from __future__ import annotations

import difflib
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from materializer.features import FeatureRecord, FeatureStore
from registry import Registry
from sluicegate.errors import NotFound, SluicegateError

__all__ = [
    "PAGE",
    "Page",
    "feature_sample",
    "histogram",
    "page_of",
    "pretty",
    "schema_diff",
    "subject_rows",
]

PAGE = 50
DAYS = 14


@dataclass(frozen=True)
class Page:
    """One page of a searched list."""

    items: list[Any]
    number: int
    pages: int
    total: int
    query: str


def page_of(items: list[Any], query: str, number: int) -> Page:
    """``items`` (already filtered by ``query``) cut to page ``number`` (from 1)."""
    pages = max(math.ceil(len(items) / PAGE), 1)
    number = min(max(number, 1), pages)
    start = (number - 1) * PAGE
    return Page(items[start : start + PAGE], number, pages, len(items), query)


def _rows(client: Client, sql: str, **parameters: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in client.query(sql, parameters=parameters).result_rows]


def subject_rows(
    registry: Registry, client: Client | None, names: list[str]
) -> list[dict[str, Any]]:
    """The subjects list's rows for ``names``: owner, format, versions, level, events per
    day (the last 14 days), last event and rejections."""
    per_day: dict[str, list[int]] = {n: [0] * DAYS for n in names}
    last: dict[str, str] = {}
    rejected: dict[str, int] = {}
    if client is not None and names:
        for subject, day, n in _rows(
            client,
            "SELECT subject, dateDiff('day', toDate(occurred_at), today()) AS ago, count() "
            "FROM events WHERE subject IN {s:Array(String)} "
            f"AND occurred_at >= today() - {DAYS - 1} GROUP BY subject, ago",
            s=names,
        ):
            if 0 <= int(day) < DAYS:
                per_day[subject][DAYS - 1 - int(day)] = int(n)
        for subject, at in _rows(
            client,
            "SELECT subject, toString(max(occurred_at)) FROM events "
            "WHERE subject IN {s:Array(String)} GROUP BY subject",
            s=names,
        ):
            last[subject] = str(at)
        for subject, n in _rows(
            client,
            "SELECT subject, count() FROM rejections FINAL WHERE subject IN {s:Array(String)} "
            "GROUP BY subject",
            s=names,
        ):
            rejected[subject] = int(n)
    out = []
    global_level = registry.global_compatibility().value
    for name in names:
        try:
            latest = registry.latest(name)
            meta = registry.metadata(name)
        except NotFound:
            continue
        level = registry.subject_compatibility(name)
        out.append(
            {
                "name": name,
                "owner": meta.owner or "",
                "format": str(latest.schema_type),
                "versions": len(registry.versions(name)),
                "level": level.value if level else f"{global_level} (global)",
                "per_day": per_day.get(name, []),
                "last_event": last.get(name, ""),
                "rejections": rejected.get(name, 0),
                "description": meta.description,
            }
        )
    return out


def pretty(text: str) -> list[str]:
    """A schema text pretty-printed (JSON indented), as lines."""
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode().splitlines()
    except orjson.JSONDecodeError:
        return text.splitlines()


def schema_diff(old: str, new: str, old_label: str, new_label: str) -> str:
    """A side-by-side HTML table of two schema texts (pretty-printed first)."""
    return difflib.HtmlDiff(wrapcolumn=60).make_table(
        pretty(old), pretty(new), old_label, new_label, context=False
    )


def histogram(values: list[Any], bins: int = 10) -> list[tuple[str, float]]:
    """(label, count) bars of non-null values: equal-width bins for numbers, the most
    frequent values otherwise."""
    present = [v for v in values if v is not None]
    numbers = [float(v) for v in present if isinstance(v, int | float) and not isinstance(v, bool)]
    if numbers and len(numbers) == len(present):
        lo, hi = min(numbers), max(numbers)
        if lo == hi:
            return [(f"{lo:g}", float(len(numbers)))]
        width = (hi - lo) / bins
        counts = [0] * bins
        for x in numbers:
            counts[min(int((x - lo) / width), bins - 1)] += 1
        return [
            (f"{lo + i * width:.4g} to {lo + (i + 1) * width:.4g}", float(c))
            for i, c in enumerate(counts)
        ]
    common = Counter(orjson.dumps(v).decode() for v in present).most_common(bins)
    return [(label, float(n)) for label, n in common]


def feature_sample(
    store: FeatureStore, client: Client | None, rec: FeatureRecord
) -> tuple[list[Any], str | None]:
    """Current values of feature version ``rec`` for a sample of up to 500 of its entities
    (spread by a hash of their keys), or the reason there are none."""
    if client is None:
        return [], "this process does not serve the store"
    try:
        cf = store.compiled(rec)
    except SluicegateError as exc:
        return [], exc.message
    # entity_expr is the SQL the store compiled from the definition, not caller text
    keys = [
        str(k)
        for (k,) in _rows(
            client,
            f"SELECT toString({cf.entity_expr}) AS k FROM events WHERE subject = {{s:String}} "
            "GROUP BY k ORDER BY cityHash64(k) LIMIT 500",
            s=cf.subject,
        )
        if k
    ]
    if not keys:
        return [], "no events yet"
    try:
        values, labels, _ = store.read(cf.entity_type, keys, [rec.ref])
    except SluicegateError as exc:
        return [], exc.message
    label = next(iter(labels))
    return [values[k][label] for k in keys if k in values], None
