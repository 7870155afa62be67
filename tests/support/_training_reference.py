"""Randomized event logs and a brute-force point-in-time reference for the training-set
tests. The reference reads the raw events in Python and applies the point-in-time rules of
docs/training-sets.md literally: for each spine row and feature, the entity's events with occurred_at < t
(and >= t - window; in arrival-time mode also ingested_at < t), aggregated in plain Python.
It shares no code with the SQL under test."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from materializer.features.definition import FeatureDefinition
from materializer.loader import EVENT_COLUMNS
from materializer.training import FeatureSpec
from materializer.training._features import spec_from_compiled

T0 = datetime(2026, 3, 1, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

VIEW_SCHEMA = {  # version 2 of shop.view: `channel` was added with a default
    "type": "object",
    "properties": {
        "user_id": {"type": "string"},
        "item_id": {"type": "string"},
        "price": {"type": "number"},
        "channel": {"type": "string"},
    },
    "required": ["user_id", "item_id", "price", "channel"],
}
ORDER_SCHEMA = {
    "type": "object",
    "properties": {"user_id": {"type": "integer"}, "amount": {"type": "integer"}},
    "required": ["user_id", "amount"],
}
SCHEMAS = {"shop.view": VIEW_SCHEMA, "shop.order": ORDER_SCHEMA}


@dataclass(frozen=True)
class Event:
    event_id: str
    subject: str
    occurred: int  # ms
    ingested: int  # ms
    payload: dict[str, Any]
    schema_version: int = 2

    def key(self, field_name: str) -> str:
        return str(self.payload[field_name])


@dataclass(frozen=True)
class Feature:
    """A test feature: the definition (compiled by the real features package) and the
    reference's own reading of it."""

    name: str
    entity_type: str
    source: str
    key_field: str
    aggregation: str
    window: str | None
    filter: str | None
    window_ms: int | None
    ref_filter: Callable[[Event], bool]
    ref_agg: Callable[[list[Event]], Any]
    default: Any

    def spec(self, version: int = 1) -> FeatureSpec:
        defn = FeatureDefinition(
            name=self.name,
            entity={"type": self.entity_type, "key": self.key_field},
            source=self.source,
            aggregation=self.aggregation,
            window=self.window,
            filter=self.filter,
            version=version,
        )
        schema = SimpleNamespace(schema_type="JSON", schema=json.dumps(SCHEMAS[self.source]))
        return spec_from_compiled(defn.compiled(schema), aggregation=self.aggregation)


def _order(e: Event) -> tuple[int, int, str]:
    return (e.occurred, e.ingested, e.event_id)


def _last(field_name: str) -> Callable[[list[Event]], Any]:
    return lambda evs: max(evs, key=_order).payload[field_name]


def _first(field_name: str) -> Callable[[list[Event]], Any]:
    return lambda evs: min(evs, key=_order).payload[field_name]


def _f(
    name: str,
    etype: str,
    source: str,
    key: str,
    agg: str,
    window: str | None,
    ref: Callable[[list[Event]], Any],
    default: Any,
    flt: str | None = None,
    ref_filter: Callable[[Event], bool] = lambda e: True,
) -> Feature:
    units = {"m": MINUTE, "h": HOUR, "d": DAY}
    window_ms = None if window is None else int(window[:-1]) * units[window[-1]]
    return Feature(name, etype, source, key, agg, window, flt, window_ms, ref_filter, ref, default)


def make_features() -> list[Feature]:
    """Lifetime and windowed (30m, 6h, 1d, 7d), count-like and value-like, filters on a
    field added by an upcast, an integer entity key, and an item-keyed feature."""
    app = lambda e: e.payload["channel"] == "app"  # noqa: E731
    return [
        _f("views", "user", "shop.view", "user_id", "count()", None, len, 0),
        _f(
            "distinct_items",
            "user",
            "shop.view",
            "user_id",
            "uniqExact(item_id)",
            None,
            lambda evs: len({e.payload["item_id"] for e in evs}),
            0,
        ),
        _f(
            "distinct_items_7d",
            "user",
            "shop.view",
            "user_id",
            "count(DISTINCT item_id)",
            "7d",
            lambda evs: len({e.payload["item_id"] for e in evs}),
            0,
        ),
        _f(
            "spend_app_1d",
            "user",
            "shop.view",
            "user_id",
            "sum(price)",
            "1d",
            lambda evs: sum(e.payload["price"] for e in evs),
            0,
            "channel = 'app'",
            app,
        ),
        _f(
            "max_price_6h",
            "user",
            "shop.view",
            "user_id",
            "max(price)",
            "6h",
            lambda evs: max(e.payload["price"] for e in evs),
            None,
        ),
        _f(
            "app_views_30m",
            "user",
            "shop.view",
            "user_id",
            "countIf(channel = 'app')",
            "30m",
            lambda evs: sum(1 for e in evs if app(e)),
            0,
        ),
        _f(
            "last_item",
            "user",
            "shop.view",
            "user_id",
            "last(item_id)",
            None,
            _last("item_id"),
            None,
        ),
        _f(
            "first_item_1d",
            "user",
            "shop.view",
            "user_id",
            "first(item_id)",
            "1d",
            _first("item_id"),
            None,
        ),
        _f(
            "avg_price",
            "user",
            "shop.view",
            "user_id",
            "avg(price)",
            None,
            lambda evs: sum(e.payload["price"] for e in evs) / len(evs),
            None,
        ),
        _f(
            "item_viewers",
            "item",
            "shop.view",
            "item_id",
            "uniqExact(user_id)",
            None,
            lambda evs: len({e.payload["user_id"] for e in evs}),
            0,
        ),
        _f("item_views_6h", "item", "shop.view", "item_id", "count()", "6h", len, 0),
        _f(
            "orders_1d",
            "user",
            "shop.order",
            "user_id",
            "sum(amount)",
            "1d",
            lambda evs: sum(e.payload["amount"] for e in evs),
            0,
        ),
        _f("orders_lifetime", "user", "shop.order", "user_id", "count()", None, len, 0),
    ]


@dataclass
class World:
    events: list[Event] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)


def random_world(rng: random.Random, n_events: int = 4000) -> World:
    """Events on a coarse time grid (many ties), a hot user, late and early arrivals,
    v1 events upcast to v2 (their `channel` is the migration's default 'web')."""
    w = World(users=[f"u{i}" for i in range(40)], items=[f"i{i}" for i in range(30)])
    hot = w.users[0]
    for n in range(n_events):
        subject = "shop.view" if rng.random() < 0.85 else "shop.order"
        occurred = T0_MS + rng.randrange(0, 10 * DAY // (5 * MINUTE)) * 5 * MINUTE
        if rng.random() < 0.3:
            occurred += rng.choice([0, 1, 999])  # a few off-grid milliseconds
        r = rng.random()
        if r < 0.15:
            ingested = occurred + rng.randrange(HOUR, 2 * DAY)  # late arrival
        elif r < 0.2:
            ingested = occurred - rng.randrange(1, 10 * MINUTE)  # producer clock ahead
        elif r < 0.35:
            ingested = occurred  # arrives at the same instant
        else:
            ingested = occurred + rng.randrange(0, 5000)
        user = hot if rng.random() < 0.3 else rng.choice(w.users[:30])  # u30.. never act
        version = 1 if rng.random() < 0.4 else 2
        if subject == "shop.view":
            payload = {
                "user_id": user,
                "item_id": rng.choice(w.items[:25]),  # i25.. never viewed
                "price": round(rng.uniform(1, 100), 2),
                "channel": "web" if version == 1 else rng.choice(["web", "app"]),
            }
        else:
            payload = {"user_id": int(user[1:]), "amount": rng.randrange(1, 5)}
        w.events.append(Event(f"ev-{n:06d}", subject, occurred, ingested, payload, version))
    return w


def event_rows(events: list[Event]) -> list[list[Any]]:
    """Rows for `events` in the loader's column order (payloads already upcast)."""
    rows = []
    for i, e in enumerate(events):
        key = str(e.payload["user_id"])
        row = {
            "event_id": e.event_id,
            "subject": e.subject,
            "entity_key": key,
            "occurred_at": datetime.fromtimestamp(e.occurred / 1000, UTC),
            "ingested_at": datetime.fromtimestamp(e.ingested / 1000, UTC),
            "source": "http",
            "producer": "test",
            "op": "",
            "source_lsn": None,
            "source_txid": None,
            "schema_id": e.schema_version,
            "schema_version": e.schema_version,
            "payload_version": 2,
            "payload": json.dumps(e.payload),
            "kafka_topic": "sg." + e.subject,
            "kafka_partition": 0,
            "kafka_offset": i,
        }
        rows.append([row[c] for c in EVENT_COLUMNS])
    return rows


def reference_value(
    feature: Feature, events: list[Event], key: str | None, t: int, *, arrival_time: bool
) -> Any:
    if key is None:
        return feature.default
    chosen = [
        e
        for e in events
        if e.subject == feature.source
        and e.key(feature.key_field) == key
        and feature.ref_filter(e)
        and e.occurred < t
        and (feature.window_ms is None or e.occurred >= t - feature.window_ms)
        and (not arrival_time or e.ingested < t)
    ]
    return feature.ref_agg(chosen) if chosen else feature.default


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return round(value.timestamp() * 1000)


def dt(ms_value: int) -> datetime:
    return T0 + timedelta(milliseconds=ms_value - T0_MS)
