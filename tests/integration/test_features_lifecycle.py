"""Feature lifecycle on a real `sluicegate serve`: backfill while events keep arriving,
rebuild, refused definitions, versions, and the `sluicegate features` CLI."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
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
    iso,
    own_topics,
    post_events,
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
USER = {"type": "user", "key": "user_id"}


@pytest.fixture
def subject(server: Server, stack: Stack, unique: str) -> Iterator[str]:
    name = f"reddit.upvote_{unique}"
    with server.client() as http:
        register(http, name, UPVOTE_SCHEMA, entity_key=["user_id"], event_time="ts")
    yield name
    delete_topics(stack.kafka_bootstrap, name)


def test_events_posted_during_a_backfill_are_counted_exactly_once(
    server: Server, subject: str
) -> None:
    now = int(time.time() * 1000)
    data = Upvotes.random(2000, users=10, posts=500, now=now)
    posted: list[dict[str, Any]] = list(data.events)
    stop = threading.Event()
    posting_times: list[float] = []

    def keep_posting() -> None:
        i = 0
        with server.client() as live:
            while not stop.is_set():
                batch = [
                    {
                        "user_id": f"u{(i + k) % 10}",
                        "post_id": f"live{i + k}",
                        "ts": iso(int(time.time() * 1000) - 1000),
                    }
                    for k in range(10)
                ]
                post_events(live, subject, batch)
                posted.extend(batch)
                posting_times.append(time.time())
                i += 10
                time.sleep(0.05)

    with server.client() as http:
        post_events(http, subject, data.events)
        wait_loaded(http, subject, len(data.events))
        poster = threading.Thread(target=keep_posting)
        poster.start()
        try:
            # the live stream is flowing into `events` before the feature is created
            deadline = time.monotonic() + 240
            while (
                sql(
                    http,
                    f"SELECT count() FROM events WHERE subject = '{subject}' AND "
                    "startsWith(JSONExtractString(payload, 'post_id'), 'live')",
                )[0][0]
                == 0
            ):
                assert time.monotonic() < deadline, "live events never loaded"
                time.sleep(0.2)
            started = time.time()
            job = apply(
                http,
                {"name": "upvotes", "entity": USER, "source": subject, "aggregation": "count()"},
                {
                    "name": "upvoted_posts",
                    "entity": USER,
                    "source": subject,
                    "aggregation": "uniqExact(post_id)",
                },
            )["job"]
            finished = time.time()
            time.sleep(1.0)
        finally:
            stop.set()
            poster.join()
        assert any(t < started for t in posting_times)
        assert any(started < t < finished for t in posting_times)
        assert any(t > finished for t in posting_times)
        wait_loaded(http, subject, len(posted))
        # the stream crossed the split: some live events went to the backfill, some to the views
        split = job["split_ms"]
        live_before, live_after = sql(
            http,
            (
                f"SELECT countIf(loaded_at < fromUnixTimestamp64Milli({split})), "
                f"countIf(loaded_at >= fromUnixTimestamp64Milli({split})) FROM events "
                f"WHERE subject = '{subject}' AND startsWith(JSONExtractString(payload, 'post_id'), "
                "'live')"
            ),
        )[0]
        assert live_before > 0 and live_after > 0, (live_before, live_after)

        counts = Counter(e["user_id"] for e in posted)
        distinct = {u: len({e["post_id"] for e in posted if e["user_id"] == u}) for u in counts}
        users = sorted(counts)

        def exact(body: dict[str, Any]) -> bool:
            return all(
                r["features"] == {"upvotes": counts[r["key"]], "upvoted_posts": distinct[r["key"]]}
                for r in body["results"]
            )

        body = read_until(http, "user", users, ["upvotes", "upvoted_posts"], exact)
        assert {r["key"]: r["features"] for r in body["results"]} == {
            u: {"upvotes": counts[u], "upvoted_posts": distinct[u]} for u in users
        }


def test_rebuild_gives_identical_online_answers(server: Server, subject: str) -> None:
    now = int(time.time() * 1000)
    data = Upvotes.random(1500, users=30, posts=80, now=now, seed=11)
    defs = [
        {
            "name": "posts_7d",
            "entity": USER,
            "source": subject,
            "aggregation": "uniqExact(post_id)",
            "window": "7d",
        },
        {"name": "posts", "entity": USER, "source": subject, "aggregation": "uniqExact(post_id)"},
        {"name": "last_post", "entity": USER, "source": subject, "aggregation": "last(post_id)"},
        {"name": "first_post", "entity": USER, "source": subject, "aggregation": "first(post_id)"},
        {
            "name": "top_posts",
            "entity": USER,
            "source": subject,
            "aggregation": "arraySort(groupUniqArray(post_id))",
            "window": "30d",
        },
        {
            "name": "share_p1",
            "entity": USER,
            "source": subject,
            "aggregation": "countIf(post_id = 'p1') / count()",
        },
    ]
    names = [d["name"] for d in defs]
    users = [f"u{i}" for i in range(30)] + ["nobody"]
    with server.client() as http:
        post_events(http, subject, data.events)
        wait_loaded(http, subject, len(data.events))
        apply(http, *defs)
        before = json.dumps(read(http, "user", users, names)["results"], sort_keys=True)
        tables_before = {
            r[0]
            for r in sql(
                http,
                "SELECT name FROM system.tables WHERE database = currentDatabase() "
                "AND name LIKE 'f\\\\_%'",
            )
        }
        result = server.cli("features", "rebuild")
        assert "rebuilt" in result.stdout, result.stdout + result.stderr
        after = json.dumps(read(http, "user", users, names)["results"], sort_keys=True)
        tables_after = {
            r[0]
            for r in sql(
                http,
                "SELECT name FROM system.tables WHERE database = currentDatabase() "
                "AND name LIKE 'f\\\\_%'",
            )
        }
    assert after == before
    assert tables_before and tables_after and not tables_before & tables_after  # new tables
    results = json.loads(before)
    at = now + 60_000  # well inside the same 7-day state: no event is near an edge
    for row in results:
        assert row["features"]["posts"] == data.distinct_posts(row["key"], at)
        assert row["features"]["posts_7d"] == data.distinct_posts(row["key"], at, 7 * DAY_MS)


INVALID = [
    ({"aggregation": "uniqExact(post_idd)"}, "unknown field 'post_idd'"),
    ({"aggregation": "uniqExactt(post_id)"}, "unknown function 'uniqExactt'"),
    (
        {"aggregation": "sum(post_id)"},
        "sum(post_id) needs a number but field 'post_id' is a string",
    ),
    ({"aggregation": "count()", "window": "7 days"}, "bad window '7 days'"),
    ({"aggregation": "count()", "filter": "user_idd = 'x'"}, "unknown field 'user_idd'"),
    (
        {"aggregation": "count()", "source": "no.such.subject"},
        "subject 'no.such.subject' is not registered",
    ),
    (
        {"aggregation": "count()", "entity": {"type": "user", "key": "uid"}},
        "entity.key: unknown field 'uid'",
    ),
    ({"aggregation": "toYear(post_id)"}, "no aggregate function"),
    ({"aggregation": "max(user_id) + 1"}, "ClickHouse refuses the expressions"),
]


def test_invalid_definitions_are_refused_and_nothing_is_created(
    server: Server, subject: str
) -> None:
    with server.client() as http:
        for change, message in INVALID:
            definition = {"name": "bad_feature", "entity": USER, "source": subject, **change}
            good = {
                "name": "good_feature",
                "entity": USER,
                "source": subject,
                "aggregation": "count()",
            }
            r = http.post("/v1/features/_definitions", json={"definitions": [good, definition]})
            assert r.status_code == 422, (change, r.text)
            assert message in r.json()["message"], (change, r.json()["message"])
        assert http.get("/v1/features").json()["features"] == []
        assert sql(http, "SELECT count() FROM feature_definitions")[0][0] == 0
        assert (
            sql(
                http,
                "SELECT count() FROM system.tables WHERE database = currentDatabase() "
                "AND name LIKE 'f\\\\_%'",
            )[0][0]
            == 0
        )
        r = http.get("/v1/features/user/u1", params={"names": "bad_feature"})
        assert r.status_code == 404
        assert "bad_feature" in r.json()["message"]


def test_versions_and_the_cli(server: Server, subject: str, tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    events = [
        {"user_id": "u1", "post_id": f"p{i}", "ts": iso(now - i * DAY_MS - 60_000)}
        for i in range(10)
    ]
    path = tmp_path / "posts.yaml"
    path.write_text(
        f"name: upvoted_posts\nentity: {{type: user, key: user_id}}\nsource: {subject}\n"
        "aggregation: uniqExact(post_id)\nwindow: 3d\nowner: admin\n"
        "description: distinct posts upvoted lately\n"
    )
    with server.client() as http:
        post_events(http, subject, events)
        wait_loaded(http, subject, len(events))
        out = server.cli("features", "apply", str(path))
        assert "upvoted_posts@1: created" in out.stdout, out.stdout + out.stderr
        assert read(http, "user", ["u1"], ["upvoted_posts"])["results"][0]["features"] == {
            "upvoted_posts": 3
        }

        out = server.cli("features", "list")
        assert "upvoted_posts@1" in out.stdout and "distinct posts upvoted" in out.stdout

        # a description change is metadata: same version
        path.write_text(path.read_text().replace("lately", "in the last days"))
        assert "upvoted_posts@1: metadata" in server.cli("features", "apply", str(path)).stdout

        # a semantic change is a new version; the old one keeps serving until deleted
        path.write_text(path.read_text().replace("window: 3d", "window: 5d"))
        diff = server.cli("features", "diff", str(path)).stdout
        assert (
            "upvoted_posts: new version" in diff and "-window: 3d" in diff and "+window: 5d" in diff
        )
        assert "upvoted_posts@2: new version" in server.cli("features", "apply", str(path)).stdout
        both = read(http, "user", ["u1"], ["upvoted_posts", "upvoted_posts@1"])
        assert both["results"][0]["features"] == {"upvoted_posts": 5, "upvoted_posts@1": 3}
        assert both["versions"] == {
            "upvoted_posts": "upvoted_posts@2",
            "upvoted_posts@1": "upvoted_posts@1",
        }
        shown = json.loads(server.cli("features", "show", "upvoted_posts").stdout)
        assert [v["version"] for v in shown["versions"]] == [1, 2]

        out = server.cli("features", "delete", "upvoted_posts@1", "--yes")
        assert "deleted upvoted_posts@1" in out.stdout
        r = http.get("/v1/features/user/u1", params={"names": "upvoted_posts@1"})
        assert r.status_code == 404
        assert read(http, "user", ["u1"], ["upvoted_posts"])["results"][0]["features"] == {
            "upvoted_posts": 5
        }

        # an invalid file through the CLI: the message names the problem, exit code 1
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            f"name: bad\nentity: {{type: user}}\nsource: {subject}\naggregation: sum(post_idx)\n"
        )
        out = server.cli("features", "apply", str(bad), check=False)
        assert out.returncode == 1
        assert "unknown field 'post_idx'" in out.stderr

        # reading a feature of another entity type is a client error
        r = http.get("/v1/features/post/p1", params={"names": "upvoted_posts"})
        assert r.status_code == 400
        assert (
            read_until(http, "user", ["u1"], ["upvoted_posts"], lambda b: True)["results"][0][
                "features"
            ]["upvoted_posts"]
            == 5
        )
