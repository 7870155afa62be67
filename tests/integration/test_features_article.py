"""The article's Reddit features on a real `sluicegate serve`: events through the gateway
(and CDC-shaped records through Kafka), the materializer, chDB, the features API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.features_helpers import (
    DAY_MS,
    MEMBERSHIP_SCHEMA,
    UPVOTE_SCHEMA,
    Upvotes,
    apply,
    cdc_envelopes,
    delete_topics,
    iso,
    own_topics,
    post_events,
    produce,
    read,
    read_until,
    register,
    sql,
    wait_loaded,
)
from support.serving import Server, start_server

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def server(tmp_path: Path, unique: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A real `sluicegate serve` loading only this test's topics."""
    srv = start_server(tmp_path / "sg", own_topics(unique))
    yield srv
    srv.stop()


Stack = Any


@pytest.fixture
def upvote_subject(server: Server, stack: Stack, unique: str) -> Iterator[str]:
    subject = f"reddit.upvote_{unique}"
    with server.client() as http:
        register(http, subject, UPVOTE_SCHEMA, entity_key=["user_id"], event_time="ts")
    yield subject
    delete_topics(stack.kafka_bootstrap, subject)


def _defs(subject: str) -> list[dict[str, Any]]:
    user = {"type": "user", "key": "user_id"}
    return [
        {
            "name": "user_upvoted_posts",
            "entity": user,
            "source": subject,
            "aggregation": "uniqExact(post_id)",
            "owner": "ml-team",
            "description": "distinct posts a user upvoted",
            "tags": ["reddit"],
        },
        {
            "name": "user_upvoted_posts_7d",
            "entity": user,
            "source": subject,
            "aggregation": "uniqExact(post_id)",
            "window": "7d",
        },
        {
            "name": "post_upvotes",
            "entity": {"type": "post", "key": "post_id"},
            "source": subject,
            "aggregation": "count()",
        },
    ]


def test_month_of_events_then_features_answer_at_once_and_stay_fresh(
    server: Server, upvote_subject: str
) -> None:
    now = int(time.time() * 1000)
    data = Upvotes.random(3000, users=40, posts=120, now=now)
    with server.client() as http:
        post_events(http, upvote_subject, data.events)
        wait_loaded(http, upvote_subject, len(data.events))

        job = apply(http, *_defs(upvote_subject))["job"]
        assert job["total"] == 3 * len(data.events)  # three features, every event once each
        assert job["done"] == job["total"]

        users = [f"u{i}" for i in range(40)] + ["nobody"]
        body = read(http, "user", users, ["user_upvoted_posts", "user_upvoted_posts_7d"])
        at = _ms(body["as_of"])
        for row in body["results"]:
            u = row["key"]
            assert row["features"] == {
                "user_upvoted_posts": data.distinct_posts(u, at),
                "user_upvoted_posts_7d": data.distinct_posts(u, at, 7 * DAY_MS),
            }, u
        assert body["results"][-1]["features"] == {
            "user_upvoted_posts": 0,
            "user_upvoted_posts_7d": 0,
        }
        posts = [f"p{i}" for i in range(120)]
        body = read(http, "post", posts, ["post_upvotes"])
        for row in body["results"]:
            assert row["features"]["post_upvotes"] == data.post_upvotes(row["key"], at)

        # one round trip for one entity
        r = http.get(
            "/v1/features/user/u3", params={"names": "user_upvoted_posts,user_upvoted_posts_7d"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["features"]["user_upvoted_posts"] == data.distinct_posts(
            "u3", _ms(r.json()["as_of"])
        )

        # new events flow in through the views: fresh values without another backfill
        fresh = [
            {"user_id": "u3", "post_id": f"new{i}", "ts": iso(now - 1000 * i)} for i in range(1, 6)
        ] + [{"user_id": "u5", "post_id": "p1", "ts": iso(now)}]
        post_events(http, upvote_subject, fresh)
        wait_loaded(http, upvote_subject, len(data.events) + len(fresh))
        data.events += fresh

        def fresh_ok(b: dict[str, Any]) -> bool:
            at = _ms(b["as_of"])
            return all(
                r["features"]["user_upvoted_posts"] == data.distinct_posts(r["key"], at)
                for r in b["results"]
            )

        body = read_until(
            http, "user", ["u3", "u5"], ["user_upvoted_posts_7d", "user_upvoted_posts"], fresh_ok
        )
        at = _ms(body["as_of"])
        for row in body["results"]:
            assert row["features"]["user_upvoted_posts_7d"] == data.distinct_posts(
                row["key"], at, 7 * DAY_MS
            )
            assert row["features"]["user_upvoted_posts"] == data.distinct_posts(row["key"], at)
        assert read(http, "post", ["p1"], ["post_upvotes"])["results"][0]["features"][
            "post_upvotes"
        ] == data.post_upvotes("p1", at)

        # the catalog as data
        catalog = {f["name"]: f for f in http.get("/v1/features").json()["features"]}

        # no training/serving skew: the catalog's compiled SQL, run over `events` the way a
        # training set evaluates it at t, equals the online values read as of t
        t = int(time.time() * 1000) - 30_000
        for name, entity_type in (
            ("user_upvoted_posts", "user"),
            ("user_upvoted_posts_7d", "user"),
            ("post_upvotes", "post"),
        ):
            q = catalog[name]["sql"]
            window = catalog[name]["window_ms"]
            since = f" AND occurred_at >= fromUnixTimestamp64Milli({t - window})" if window else ""
            offline = dict(
                sql(
                    http,
                    (
                        f"SELECT {q['entity_expr']} AS k, toJSONString({q['value_agg']}) FROM events "
                        f"WHERE subject = '{upvote_subject}' AND {q['filter_expr']} "
                        f"AND occurred_at < fromUnixTimestamp64Milli({t}){since} GROUP BY k"
                    ),
                )
            )
            online = http.post(
                f"/v1/features/{entity_type}/batch",
                json={"keys": sorted(offline), "names": [name], "at": str(t)},
            ).json()["results"]
            assert offline and {r["key"]: r["features"][name] for r in online} == {
                k: json.loads(v) for k, v in offline.items()
            }
        entry = catalog["user_upvoted_posts"]
        assert entry["owner"] == "ml-team"
        assert entry["description"] == "distinct posts a user upvoted"
        assert entry["source"] == upvote_subject
        assert entry["version"] == 1
        assert entry["reads"] == {"subjects": [upvote_subject], "fields": ["user_id", "post_id"]}
        assert entry["freshness_ms"] == max(Upvotes.ms(e) for e in data.events)


def test_windows_slide_past_events_at_event_precision(server: Server, upvote_subject: str) -> None:
    defs = [
        {
            "name": "upvotes_10s",
            "entity": {"type": "user", "key": "user_id"},
            "source": upvote_subject,
            "aggregation": "count()",
            "window": "10s",
        },
        {
            "name": "upvotes_1h",
            "entity": {"type": "user", "key": "user_id"},
            "source": upvote_subject,
            "aggregation": "count()",
            "window": "1h",
        },
        {
            "name": "upvotes",
            "entity": {"type": "user", "key": "user_id"},
            "source": upvote_subject,
            "aggregation": "count()",
        },
    ]
    names = [d["name"] for d in defs]
    with server.client() as http:
        apply(http, *defs)
        now = int(time.time() * 1000)
        # past events near the 1 h edge (inside 1-minute buckets), and a future stream that
        # keeps entering and leaving the 10 s window for the next two minutes
        times = [now - 5_000, now - 3_600_000 + 40_123, now - 3_600_000 + 45_007]
        times += [now + 4_000 * k + 17 for k in range(1, 30)]
        post_events(
            http,
            upvote_subject,
            [{"user_id": "u1", "post_id": f"p{i}", "ts": iso(t)} for i, t in enumerate(times)],
        )
        wait_loaded(http, upvote_subject, len(times))

        def expected(at: int) -> dict[str, int]:
            return {
                "upvotes_10s": sum(1 for t in times if at - 10_000 <= t < at),
                "upvotes_1h": sum(1 for t in times if at - 3_600_000 <= t < at),
                "upvotes": sum(1 for t in times if t < at),
            }

        # 1. at chosen read times: exact to the millisecond at every edge
        probes = sorted(
            {t + d for t in times[:8] for d in (-1, 0, 1)}
            | {t + w + d for t in times[:8] for w in (10_000, 3_600_000) for d in (-1, 0, 1)}
        )
        probes = [p for p in probes if abs(p - now) < 86_000_000]
        final = now + 130_000  # every event visible (views commit just after `events`)
        deadline = time.monotonic() + 20
        while (
            http.post(
                "/v1/features/user/batch", json={"keys": ["u1"], "names": names, "at": str(final)}
            ).json()["results"][0]["features"]
            != expected(final)
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        for at in probes:
            body = http.post(
                "/v1/features/user/batch", json={"keys": ["u1"], "names": names, "at": str(at)}
            ).json()
            assert body["results"][0]["features"] == expected(at), (at - now, body)
            one = http.get(
                "/v1/features/user/u1", params={"names": ",".join(names), "at": iso(at)}
            ).json()
            assert one["features"] == expected(at), (at - now, one)

        # 2. as of now, while real time passes: the windows slide
        seen = set()
        stop = time.monotonic() + 12
        while time.monotonic() < stop:
            body = read(http, "user", ["u1"], names)
            at = _ms(body["as_of"])
            assert body["results"][0]["features"] == expected(at), (at - now, body)
            seen.add(tuple(expected(at).values()))
            time.sleep(0.2)
    assert len(seen) >= 3, seen


def test_communities_a_user_belongs_to_from_cdc(server: Server, stack: Stack, unique: str) -> None:
    subject = f"cdc.app.memberships_{unique}"
    with server.client() as http:
        schema_id, _ = register(
            http, subject, MEMBERSHIP_SCHEMA, entity_key=["id"], event_time=None
        )
        t = int(time.time() * 1000) - 60_000
        changes = [
            ("r", t, {"id": 1, "user_id": "alice", "community_id": 10, "role": "member"}),
            ("c", t + 1, {"id": 2, "user_id": "alice", "community_id": 20, "role": "member"}),
            ("c", t + 2, {"id": 3, "user_id": "bob", "community_id": 10, "role": "member"}),
            ("c", t + 3, {"id": 4, "user_id": "alice", "community_id": 30, "role": "banned"}),
        ]
        produce(stack.kafka_bootstrap, cdc_envelopes(subject, schema_id, changes))
        wait_loaded(http, subject, len(changes))
        apply(
            http,
            {
                "name": "user_communities",
                "entity": {"type": "user", "key": "user_id"},
                "source": subject,
                "attribute": {"column": "community_id", "mode": "set"},
                "filter": "role != 'banned'",
            },
            {
                "name": "membership_role",
                "entity": {"type": "membership"},
                "source": subject,
                "attribute": {"column": "role"},
            },
        )
        names = ["user_communities"]
        got = read(http, "user", ["alice", "bob", "carol"], names)["results"]
        assert [r["features"]["user_communities"] for r in got] == [[10, 20], [10], None]

        # CDC changes after the backfill: alice leaves 10 (delete with before-image),
        # bob joins 30, alice is unbanned in 30 (update)
        later = [
            ("d", t + 10, {"id": 1, "user_id": "alice", "community_id": 10, "role": "member"}),
            ("c", t + 11, {"id": 5, "user_id": "bob", "community_id": 30, "role": "member"}),
            ("u", t + 12, {"id": 4, "user_id": "alice", "community_id": 30, "role": "member"}),
        ]
        produce(stack.kafka_bootstrap, cdc_envelopes(subject, schema_id, later))
        wait_loaded(http, subject, len(changes) + len(later))
        got = read_until(
            http,
            "user",
            ["alice", "bob"],
            names,
            lambda b: (
                [r["features"]["user_communities"] for r in b["results"]] == [[20, 30], [10, 30]]
            ),
        )["results"]
        assert [r["features"]["user_communities"] for r in got] == [[20, 30], [10, 30]]
        roles = read(http, "membership", ["1", "4", "9"], ["membership_role"])["results"]
        assert [r["features"]["membership_role"] for r in roles] == [None, "member", None]
    delete_topics(stack.kafka_bootstrap, subject)


def _ms(iso_text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture
def cdc(stack: Stack, tmp_path: Path, unique: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    from support.cdc_helpers import CdcHarness

    starter = start_server
    h = CdcHarness(
        stack,
        tmp_path,
        unique,
        lambda data_dir, env: starter(data_dir, {**env, **own_topics(unique)}),
    )
    yield h
    h.cleanup()


def test_communities_from_a_captured_postgres_table(cdc: Any) -> None:
    """The same feature from a real PostgreSQL table through Debezium and the CDC bridge."""
    table = cdc.create_table(
        "id int PRIMARY KEY, user_id text NOT NULL, community_id int NOT NULL", suffix="memberships"
    )
    cdc.sql(
        f"ALTER TABLE {table} REPLICA IDENTITY FULL",
        f"INSERT INTO {table} VALUES (1, 'alice', 10), (2, 'alice', 20), (3, 'bob', 10)",
    )
    cdc.write_config([{"name": table}])
    server = cdc.start()
    cdc.apply()
    subject = cdc.subject(table)
    names = ["user_communities"]
    with server.client() as http:
        wait_loaded(http, subject, 3)
        apply(
            http,
            {
                "name": "user_communities",
                "entity": {"type": "user", "key": "user_id"},
                "source": subject,
                "attribute": {"column": "community_id", "mode": "set"},
            },
        )
        got = read(http, "user", ["alice", "bob"], names)["results"]
        assert [r["features"]["user_communities"] for r in got] == [[10, 20], [10]]

        cdc.sql(
            f"DELETE FROM {table} WHERE id = 1",
            f"INSERT INTO {table} VALUES (4, 'bob', 30)",
            f"UPDATE {table} SET community_id = 25 WHERE id = 2",
        )
        wait_loaded(http, subject, 6)
        want = [[25], [10, 30]]
        got = read_until(
            http,
            "user",
            ["alice", "bob"],
            names,
            lambda b: [r["features"]["user_communities"] for r in b["results"]] == want,
        )["results"]
        assert [r["features"]["user_communities"] for r in got] == want

        # one transaction updating a row twelve times: the changes share their commit
        # time (and usually their ingestion batch); the LSN puts them in commit order
        apply(
            http,
            {
                "name": "user_last_community",
                "entity": {"type": "user", "key": "user_id"},
                "source": subject,
                "aggregation": "last(community_id)",
            },
        )
        updates = "; ".join(
            f"UPDATE {table} SET community_id = {40 + i} WHERE id = 3" for i in range(12)
        )
        cdc.sql(f"BEGIN; {updates}; COMMIT")
        wait_loaded(http, subject, 18)
        names = ["user_communities", "user_last_community"]
        want_bob = {"user_communities": [30, 51], "user_last_community": 51}
        got = read_until(
            http, "user", ["bob"], names, lambda b: b["results"][0]["features"] == want_bob
        )["results"]
        assert got[0]["features"] == want_bob
