"""Point-in-time correctness of training sets: randomized event logs, extracted by the real
SQL on chDB (in this test process, with its own data directory), compared value by value
with a brute-force reference computed in Python from the raw events."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from support._training_reference import (
    DAY,
    HOUR,
    MINUTE,
    T0_MS,
    Event,
    dt,
    event_rows,
    make_features,
    ms,
    random_world,
    reference_value,
    same,
)

from materializer.loader import EVENT_COLUMNS
from materializer.training import (
    ObservationsSpine,
    SubjectSpine,
    TrainingJob,
    append_observations,
    report_from_arrow,
    training_set,
)
from migrations._clickhouse import apply_clickhouse_migrations
from sluicegate.clickhouse import BASE_SETTINGS


@pytest.fixture
def store(chdb_path: Path, unique: str) -> Iterator[tuple[Client, str]]:
    """A fresh database with the real migrations applied, on chDB in this process."""
    database = f"t_{unique}"
    kwargs = {"interface": "chdb", "path": str(chdb_path), "settings": BASE_SETTINGS}
    boot = clickhouse_connect.get_client(**kwargs)
    boot.command(f"CREATE DATABASE {database}")
    client = clickhouse_connect.get_client(database=database, **kwargs)
    apply_clickhouse_migrations(client)
    yield client, database
    boot.command(f"DROP DATABASE {database}")


def _load(client: Client, events: list[Event], *, duplicate: int = 0) -> None:
    rows = event_rows(events)
    client.insert("events", rows, column_names=list(EVENT_COLUMNS))
    if duplicate:  # a re-delivered batch: the same events again, folded by FINAL
        client.insert("events", rows[:duplicate], column_names=list(EVENT_COLUMNS))


def _compare(
    table: Any,
    features: list[Any],
    events: list[Event],
    keys: dict[str, str],
    *,
    arrival_time: bool,
) -> int:
    """Every value of ``table`` against the reference; returns the number compared."""
    rows = table.to_pylist()
    mismatches = []
    for row in rows:
        t = ms(row["observed_at"])
        for f in features:
            key = row[keys[f.entity_type]]
            want = reference_value(f, events, key, t, arrival_time=arrival_time)
            if not same(row[f.name], want):
                mismatches.append((row["observation_id"], f.name, key, t, row[f.name], want))
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:5]}"
    return len(rows) * len(features)


def _observations(
    rng: random.Random, users: list[str], items: list[str], n: int, events: list[Event]
) -> list[dict[str, Any]]:
    """Observation times: half exactly at an event time (ties at t), half on the grid."""
    times = [e.occurred for e in events]
    out = []
    for i in range(n):
        t = rng.choice(times) if i % 2 else T0_MS + rng.randrange(0, 11 * DAY // MINUTE) * MINUTE
        entities: dict[str, Any] = {"user": rng.choice([*users, "nobody"])}
        if rng.random() < 0.9:
            entities["item"] = rng.choice(items)
        out.append(
            {
                "id": f"obs-{i:05d}",
                "time": dt(t),
                "entities": entities,
                "labels": {
                    "clicked": rng.random() < 0.3,
                    "dwell": round(rng.uniform(0, 9), 3),
                    "rank": rng.randrange(10),
                    "variant": rng.choice(["a", "b"]),
                },
            }
        )
    return out


@pytest.mark.parametrize(
    ("arrival_time", "hot_events", "history_joins"),
    [(False, 1024, False), (True, 1024, False), (False, 0, False), (False, 1024, True)],
    ids=["event-time", "arrival-time", "event-time-every-entity-hot", "event-time-history-joins"],
)
def test_observations_spine_matches_brute_force(
    store: tuple[Client, str],
    arrival_time: bool,
    hot_events: int,
    history_joins: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``history_joins``: running groups in the form kept for aggregates without an -If
    form (a history table and ASOF joins), as if the events' column types were unknown."""
    if history_joins:
        monkeypatch.setattr(TrainingJob, "_events_columns", lambda self: {})
    client, database = store
    rng = random.Random(20260301 + arrival_time)
    world = random_world(rng)
    _load(client, world.events, duplicate=300)
    obs = _observations(rng, world.users, world.items, 700, world.events)
    append_observations(client, "clicks", obs, database=database)
    append_observations(client, "clicks", obs[:50], database=database)  # a retried post
    feats = make_features()
    specs = [f.spec(version=1 + i % 3) for i, f in enumerate(feats)]
    job = training_set(
        client,
        ObservationsSpine("clicks"),
        specs,
        database=database,
        arrival_time=arrival_time,
        hot_events_per_window=hot_events,  # 0: windowed values from bucket states only
    )
    table = job.to_arrow()
    assert table.num_rows == 700
    assert set(table.column_names) == {
        "observation_id",
        "observed_at",
        "user",
        "item",
        "clicked",
        "dwell",
        "rank",
        "variant",
        *(f.name for f in feats),
    }
    compared = _compare(
        table, feats, world.events, {"user": "user", "item": "item"}, arrival_time=arrival_time
    )
    assert compared == 700 * len(feats)
    # labels come through typed and unchanged
    by_id = {o["id"]: o for o in obs}
    for row in table.to_pylist():
        assert row["clicked"] == by_id[row["observation_id"]]["labels"]["clicked"]
        assert row["rank"] == by_id[row["observation_id"]]["labels"]["rank"]
        assert row["dwell"] == pytest.approx(by_id[row["observation_id"]]["labels"]["dwell"])
    report = job.report
    assert report.rows == 700
    assert report_from_arrow(table) == report.to_dict()  # carried in the schema metadata
    assert report.leakage_audit["passed"] is True
    assert report.mode == ("arrival_time" if arrival_time else "event_time")
    assert [f["version"] for f in report.features] == [s.version for s in specs]
    nulls = {f["name"]: f["null_rate"] for f in report.features}
    expected_nulls = sum(r["max_price_6h"] is None for r in table.to_pylist()) / 700
    assert nulls["max_price_6h"] == pytest.approx(expected_nulls)
    assert nulls["views"] == 0.0  # count-like: 0, never NULL


def test_arrival_time_excludes_late_events(store: tuple[Client, str]) -> None:
    """An event that happened before t but arrived after t counts in event-time mode only."""
    client, database = store
    t = T0_MS + DAY
    events = [
        Event(
            "a",
            "shop.view",
            t - HOUR,
            t - HOUR + 5,
            {"user_id": "u1", "item_id": "i1", "price": 1.0, "channel": "web"},
        ),
        Event(
            "late",
            "shop.view",
            t - 2 * HOUR,
            t + HOUR,
            {"user_id": "u1", "item_id": "i2", "price": 2.0, "channel": "web"},
        ),
        Event(
            "at-t",
            "shop.view",
            t,
            t,
            {"user_id": "u1", "item_id": "i3", "price": 3.0, "channel": "web"},
        ),
    ]
    _load(client, events)
    append_observations(
        client, "s", [{"id": "o", "time": dt(t), "entities": {"user": "u1"}}], database=database
    )
    feats = {f.name: f for f in make_features()}
    specs = [feats["views"].spec(), feats["distinct_items_7d"].spec()]
    rows = training_set(client, "s", specs, database=database).to_arrow().to_pylist()
    assert (rows[0]["views"], rows[0]["distinct_items_7d"]) == (2, 2)
    rows = (
        training_set(client, "s", specs, database=database, arrival_time=True)
        .to_arrow()
        .to_pylist()
    )
    assert (rows[0]["views"], rows[0]["distinct_items_7d"]) == (1, 1)


@pytest.mark.parametrize("hot_events", [1024, 0], ids=["by-event", "every-entity-hot"])
def test_window_edges_to_the_millisecond(store: tuple[Client, str], hot_events: int) -> None:
    """An event at exactly t - window counts, one a millisecond earlier does not, one at t
    does not; a value seen again inside the window counts once. For the distinct count
    (read from the times values are seen) and a windowed max (bucket states when hot)."""
    client, database = store
    t = T0_MS + 20 * DAY + 7 * HOUR + 12_345  # not on any bucket boundary
    week, six_h = 7 * DAY, 6 * HOUR

    user = "o'hot\\"  # a quote and a backslash: entity keys reach the SQL as literals

    def view(i: int, at: int, item: str, price: float) -> Event:
        payload = {"user_id": user, "item_id": item, "price": price, "channel": "web"}
        return Event(f"e{i}", "shop.view", at, at, payload)

    events = [
        view(1, t - week, "a", 1.0),  # the window's first millisecond: in
        view(2, t - week - 1, "b", 1.0),  # just before it: out
        view(3, t - week - 1, "c", 1.0),  # out, but c is seen again inside the window
        view(4, t - 1, "c", 1.0),  # c: counts once
        view(5, t, "d", 1.0),  # at t: never
        view(6, t - six_h - 1, "c", 90.0),  # outside the 6 h window: not the max
        view(7, t - six_h, "c", 5.0),  # the 6 h window's first millisecond: the max
        view(8, t - 3 * HOUR, "a", 3.0),
        view(9, t + 1, "e", 99.0),  # after t
    ]
    # enough events long before t to make u1 hot where asked (they are outside both windows)
    events += [view(100 + i, t - 30 * DAY + i * 1000, "old", 1.0) for i in range(300)]
    _load(client, events)
    append_observations(
        client, "edges", [{"id": "o", "time": dt(t), "entities": {"user": user}}], database=database
    )
    feats = {f.name: f for f in make_features()}
    specs = [feats["distinct_items_7d"].spec(), feats["max_price_6h"].spec()]
    rows = (
        training_set(client, "edges", specs, database=database, hot_events_per_window=hot_events)
        .to_arrow()
        .to_pylist()
    )
    assert (rows[0]["distinct_items_7d"], rows[0]["max_price_6h"]) == (2, 5.0)


def test_subject_spine_excludes_the_event_itself(store: tuple[Client, str]) -> None:
    """Every view is a row: the user's distinct items and the item's viewers so far, with
    the view itself (and any view at the same instant) excluded."""
    client, database = store
    rng = random.Random(7)
    world = random_world(rng, n_events=1500)
    _load(client, world.events)
    feats = [f for f in make_features() if f.source == "shop.view"]
    job = training_set(
        client,
        SubjectSpine(
            "shop.view",
            {"user": "user_id", "item": "item_id"},
            labels={"price": "price", "channel": "channel"},
        ),
        [f.spec() for f in feats],
        database=database,
    )
    table = job.to_arrow()
    views = [e for e in world.events if e.subject == "shop.view"]
    assert table.num_rows == len(views)
    _compare(table, feats, world.events, {"user": "user", "item": "item"}, arrival_time=False)
    by_id = {e.event_id: e for e in views}
    for row in table.to_pylist():
        assert row["price"] == pytest.approx(by_id[row["observation_id"]].payload["price"])
        assert row["channel"] == by_id[row["observation_id"]].payload["channel"]
    assert job.report.leakage_audit["passed"] is True


def test_print_sql_runs_as_is(store: tuple[Client, str]) -> None:
    """The SQL a user sees gives the same rows when run by hand."""
    client, database = store
    rng = random.Random(11)
    world = random_world(rng, n_events=800)
    _load(client, world.events)
    append_observations(
        client,
        "s",
        _observations(rng, world.users, world.items, 120, world.events),
        database=database,
    )
    job = training_set(client, "s", [f.spec() for f in make_features()], database=database)
    text = job.to_sql()
    assert "sorted in with the events" in text and "--   views@v1: count()" in text
    by_hand = client.query_arrow(text)
    assert by_hand.to_pylist() == job.to_arrow().to_pylist()


def test_empty_history_defaults(store: tuple[Client, str]) -> None:
    """No events at all for the entity: 0 for count-like features, NULL for value-like."""
    client, database = store
    _load(
        client,
        [
            Event(
                "x",
                "shop.view",
                T0_MS,
                T0_MS,
                {"user_id": "u9", "item_id": "i1", "price": 5.0, "channel": "web"},
            )
        ],
    )
    append_observations(
        client,
        "s",
        [
            {"id": "1", "time": dt(T0_MS + HOUR), "entities": {"user": "u1", "item": "i7"}},
            {"id": "2", "time": dt(T0_MS), "entities": {"user": "u9", "item": "i1"}},
        ],
        database=database,
    )
    feats = make_features()
    rows = (
        training_set(client, "s", [f.spec() for f in feats], database=database)
        .to_arrow()
        .to_pylist()
    )
    for row in rows:
        for f in feats:
            assert row[f.name] == f.default, (row["observation_id"], f.name)
    assert datetime.fromtimestamp(0, UTC) not in [r["last_item"] for r in rows]
