"""All features of an entity type keep their states side by side in one table, on a real
`sluicegate serve`: values equal a brute force whatever other features share the rows, a
feature added or backfilled later leaves the others' answers alone, a deleted one takes
its columns with it, and the catalog shows each feature's freshness lag."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.features_helpers import (
    DAY_MS,
    UPVOTE_SCHEMA,
    Upvotes,
    apply,
    delete_topics,
    own_topics,
    post_events,
    read,
    register,
    sql,
    wait_loaded,
)
from support.gateway_helpers import create_token
from support.serving import Server, start_server

Stack = Any
pytestmark = pytest.mark.timeout(600)
USER = {"type": "user", "key": "user_id"}


@pytest.fixture
def server(tmp_path: Path, unique: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    srv = start_server(tmp_path / "sg", own_topics(unique))
    yield srv
    srv.stop()


@pytest.fixture
def subjects(server: Server, stack: Stack, unique: str) -> Iterator[tuple[str, str]]:
    names = (f"reddit.upvote_{unique}", f"reddit.comment_{unique}")
    with server.client() as http:
        for name in names:
            register(http, name, UPVOTE_SCHEMA, entity_key=["user_id"], event_time="ts")
    yield names
    delete_topics(stack.kafka_bootstrap, *names)


def _upvote_features(upvote: str) -> list[dict[str, Any]]:
    """upvotes (lifetime count), last_upvoted (last post), posts_7d (distinct posts, 7 days)."""
    return [
        {"name": "upvotes", "entity": USER, "source": upvote, "aggregation": "count()"},
        {"name": "last_upvoted", "entity": USER, "source": upvote, "aggregation": "last(post_id)"},
        {
            "name": "posts_7d",
            "entity": USER,
            "source": upvote,
            "aggregation": "uniqExact(post_id)",
            "window": "7d",
        },
    ]


def _columns(http: Any) -> dict[str, list[str]]:
    """Feature columns per table (the views' own columns left out)."""
    rows = sql(
        http,
        "SELECT table, groupArray(name) FROM system.columns WHERE database = currentDatabase() "
        "AND name LIKE 'f\\\\_%' GROUP BY table",
    )
    return {table: sorted(cols) for table, cols in rows if not table.endswith("_mv")}


def test_features_of_an_entity_type_share_one_table_and_keep_their_own_values(
    server: Server, subjects: tuple[str, str]
) -> None:
    upvote, comment = subjects
    now = int(time.time() * 1000)
    upvotes = Upvotes.random(600, users=8, posts=40, now=now, seed=3)
    comments = Upvotes.random(300, users=8, posts=40, now=now, seed=4)
    # a user with comments only: the upvote features' rows are the comment features' rows
    comments.events += [
        {**e, "user_id": "only_comments"} for e in Upvotes.random(20, 1, 5, now=now).events
    ]
    users = [f"u{i}" for i in range(8)] + ["only_comments", "nobody"]

    def expected(at: int) -> dict[str, dict[str, Any]]:
        out = {}
        for u in users:
            mine = [e for e in upvotes.events if e["user_id"] == u and Upvotes.ms(e) < at]
            latest = max(mine, key=lambda e: (Upvotes.ms(e), e["post_id"]), default=None)
            out[u] = {
                "upvotes": len(mine),
                "last_upvoted": None if latest is None else latest["post_id"],
                "posts_7d": upvotes.distinct_posts(u, at, 7 * DAY_MS),
                "comments": sum(
                    1 for e in comments.events if e["user_id"] == u and Upvotes.ms(e) < at
                ),
            }
        return out

    with server.client() as http:
        post_events(http, upvote, upvotes.events)
        post_events(http, comment, comments.events)
        wait_loaded(http, upvote, len(upvotes.events))
        wait_loaded(http, comment, len(comments.events))
        apply(
            http,
            *_upvote_features(upvote),
            {"name": "comments", "entity": USER, "source": comment, "aggregation": "count()"},
        )
        names = ["upvotes", "last_upvoted", "posts_7d", "comments"]
        # one table holds every feature's columns
        columns = _columns(http)
        assert list(columns) == ["fs_user"], columns
        for n in names:
            assert f"f_{n}__v1g0_n" in columns["fs_user"]

        at = int(time.time() * 1000)
        want = expected(at + 1)  # no event is newer than `at`
        body = read(http, "user", users, names)
        got = {r["key"]: r["features"] for r in body["results"]}
        assert got == want
        assert got["only_comments"]["last_upvoted"] is None  # not the comment rows' empty state
        one = read(http, "user", ["only_comments"], names)["results"][0]["features"]
        assert one == want["only_comments"]

        # a feature added and backfilled later: the others answer the same meanwhile
        answers: list[dict[str, Any]] = []
        stop = threading.Event()

        def keep_reading() -> None:
            with server.client() as live:
                while not stop.is_set():
                    answers.append(read(live, "user", users, names))

        reader = threading.Thread(target=keep_reading)
        reader.start()
        try:
            apply(
                http,
                {
                    "name": "commented_posts",
                    "entity": USER,
                    "source": comment,
                    "aggregation": "uniqExact(post_id)",
                },
            )
        finally:
            stop.set()
            reader.join()
        assert answers
        for answer in answers:
            assert {r["key"]: r["features"] for r in answer["results"]} == want
        added = read(http, "user", users, [*names, "commented_posts"])["results"]
        for r in added:
            posts = {e["post_id"] for e in comments.events if e["user_id"] == r["key"]}
            assert r["features"]["commented_posts"] == len(posts)
            assert {n: r["features"][n] for n in names} == want[r["key"]]

        # a deleted feature takes its columns; the others keep their values
        r = http.delete("/v1/features/_definitions/posts_7d")
        assert r.status_code == 200, r.text
        assert not [c for c in _columns(http)["fs_user"] if c.startswith("f_posts_7d__")]
        rest = ["upvotes", "last_upvoted", "comments"]
        after = {r["key"]: r["features"] for r in read(http, "user", users, rest)["results"]}
        assert after == {u: {n: want[u][n] for n in rest} for u in users}

        # the catalog: each feature's freshness lag
        catalog = http.get("/v1/features").json()["features"]
        assert sorted(f["name"] for f in catalog) == sorted([*rest, "commented_posts"])
        for f in catalog:
            assert isinstance(f["freshness_lag_ms"], int), f
            assert 0 <= f["freshness_lag_ms"] < 120_000, f


def _metric(http: Any, name: str) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_concurrent_reads_share_queries_and_each_is_exact_as_of_its_time(
    server: Server, subjects: tuple[str, str]
) -> None:
    """Reads as of now arriving together coalesce into fewer ClickHouse queries, from two
    teams' tokens (neither admin) and with a key written as SQL; each answer is its own
    key's and still equals a brute force as of the `as_of` it reports."""
    upvote, _ = subjects
    now = int(time.time() * 1000)
    upvotes = Upvotes.random(400, users=12, posts=30, now=now, seed=11)
    users = [f"u{i}" for i in range(12)] + ["nobody", "u1' OR 1=1; DROP TABLE fs_user --"]
    names = ["upvotes", "posts_7d", "last_upvoted"]

    def expected(user: str, at: int) -> dict[str, Any]:
        mine = [e for e in upvotes.events if e["user_id"] == user and Upvotes.ms(e) < at]
        latest = max(mine, key=lambda e: (Upvotes.ms(e), e["post_id"]), default=None)
        return {
            "upvotes": len(mine),
            "posts_7d": upvotes.distinct_posts(user, at, 7 * DAY_MS),
            "last_upvoted": None if latest is None else latest["post_id"],
        }

    with server.client() as http:
        post_events(http, upvote, upvotes.events)
        wait_loaded(http, upvote, len(upvotes.events))
        apply(http, *_upvote_features(upvote))
        tokens = [create_token(http, team) for team in ("alpha", "beta")]
        reads_before = _metric(http, "sluicegate_feature_reads_total")
        queries_before = _metric(http, "sluicegate_feature_read_queries_total")

        answers: list[tuple[str, dict[str, Any]]] = []
        start = threading.Barrier(16)

        def client(i: int) -> None:
            with server.client(tokens[i % 2]) as own:
                start.wait()
                for j in range(6):
                    user = users[(i + j) % len(users)]
                    r = own.get(f"/v1/features/user/{user}", params={"names": ",".join(names)})
                    assert r.status_code == 200, r.text
                    answers.append((user, r.json()))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(answers) == 96
        for user, body in answers:
            assert body["key"] == user
            at = Upvotes.ms({"ts": body["as_of"]})
            assert body["features"] == expected(user, at), (user, body["as_of"])
        reads = _metric(http, "sluicegate_feature_reads_total") - reads_before
        queries = _metric(http, "sluicegate_feature_read_queries_total") - queries_before
        assert reads == 96
        assert queries < reads  # requests that arrived together shared a query
