"""Training sets through a real `sluicegate serve`: events posted to the gateway, loaded
from Kafka, features applied through the features API, observations posted over HTTP, the
training set extracted with the `sluicegate training-set` CLI. Checks the article's example
(each upvote with the user's distinct upvoted posts, their communities and the post's
upvotes so far, the upvote itself excluded) and that training values at T equal the online
values at T for every feature (no training/serving skew)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pyarrow.parquet as pq
import pytest
from support.mz_support import delete_topics, sql, wait_for
from support.serving import start_server

if TYPE_CHECKING:
    from tests.conftest import Server
    from tests.integration.conftest import Stack

UPVOTE_SCHEMA = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string"},
        "post_id": {"type": "string"},
        "community": {"type": "string"},
        "ts": {"type": "string", "format": "date-time"},
    },
    "required": ["user_id", "post_id", "community", "ts"],
}


def _features(subject: str) -> list[dict[str, Any]]:
    user = {"type": "user", "key": "user_id"}
    post = {"type": "post", "key": "post_id"}
    return [
        {
            "name": "user_upvoted_posts",
            "entity": user,
            "source": subject,
            "aggregation": "count(DISTINCT post_id)",
        },
        {
            "name": "user_upvoted_posts_7d",
            "entity": user,
            "source": subject,
            "aggregation": "uniqExact(post_id)",
            "window": "7d",
        },
        {
            "name": "user_communities",
            "entity": user,
            "source": subject,
            "aggregation": "uniqExact(community)",
        },
        {
            "name": "user_upvotes_1h",
            "entity": user,
            "source": subject,
            "aggregation": "count()",
            "window": "1h",
        },
        {
            "name": "user_last_community",
            "entity": user,
            "source": subject,
            "aggregation": "last(community)",
        },
        {"name": "post_upvotes", "entity": post, "source": subject, "aggregation": "count()"},
        {
            "name": "post_upvotes_1d",
            "entity": post,
            "source": subject,
            "aggregation": "count()",
            "window": "1d",
        },
    ]


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One `sluicegate serve` for this module's tests (loading the shared broker's backlog
    of governed topics takes a while, so it is paid once)."""
    srv = start_server(tmp_path_factory.mktemp("training") / "sg")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def loaded(server: Server, stack: Stack) -> Iterator[dict[str, Any]]:
    """A serve with an upvote subject, the features, and ~400 upvotes over 10 days,
    loaded into `events` and into the online features."""
    unique = uuid.uuid4().hex[:10]
    subject = f"t{unique}.upvote"
    http = server.client()
    r = http.post(
        f"/v1/subjects/{subject}/versions",
        json={
            "schema": orjson.dumps(UPVOTE_SCHEMA).decode(),
            "schemaType": "JSON",
            "metadata": {"owner": "admin", "entity_key": ["user_id"], "event_time": "ts"},
        },
    )
    assert r.status_code in (200, 201), r.text
    r = http.post("/v1/features/_definitions", json={"definitions": _features(subject)})
    assert r.status_code == 200, r.text
    job = r.json().get("job")
    if job:
        wait_for(
            lambda: (
                http.get(f"/v1/features/_jobs/{job['id']}").json().get("state")
                in ("done", "succeeded", "finished")
            ),
            what="the features' backfill",
        )
    rng = random.Random(unique)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(seconds=30)
    users = [f"u{i}" for i in range(12)]
    posts = [f"p{i}" for i in range(15)]
    upvotes = []
    for _ in range(400):
        ago = rng.choice([rng.randrange(0, 90), rng.randrange(0, 14_400)])  # minutes
        upvotes.append(
            {
                "user_id": "u0" if rng.random() < 0.25 else rng.choice(users[:10]),
                "post_id": rng.choice(posts[:12]),
                "community": rng.choice(["python", "ml", "rust", "cats"]),
                "ts": _iso(start - timedelta(minutes=ago)),
            }
        )
    for i in range(0, len(upvotes), 100):
        r = http.post(f"/v1/events/{subject}/batch", json=upvotes[i : i + 100])
        assert r.status_code in (200, 201, 202), r.text
    wait_for(
        lambda: (
            sql(http, f"SELECT count() FROM events WHERE subject = '{subject}'") == [[len(upvotes)]]
        ),
        timeout=600,
        what="the upvotes in `events`",
    )

    def online_total() -> bool:
        r = http.get("/v1/features/post", params={"keys": ",".join(posts), "names": "post_upvotes"})
        return r.status_code == 200 and sum(
            x["features"]["post_upvotes"] for x in r.json()["results"]
        ) == len(upvotes)

    wait_for(online_total, timeout=300, what="every upvote in the online features")
    yield {"http": http, "subject": subject, "upvotes": upvotes, "users": users, "posts": posts}
    http.close()
    delete_topics(stack.kafka_bootstrap, subject)


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


pytestmark = pytest.mark.timeout(1200)  # the first test waits for the broker's backlog


def test_online_values_equal_training_values(
    server: Server, loaded: dict[str, Any], tmp_path: Path
) -> None:
    http: httpx.Client = loaded["http"]
    names = [f["name"] for f in _features(loaded["subject"])]
    user_names = [n for n in names if n.startswith("user_")]
    post_names = [n for n in names if n.startswith("post_")]
    online: dict[tuple[str, str], dict[str, Any]] = {}
    observations = []
    for i, (user, post) in enumerate(zip(loaded["users"], loaded["posts"], strict=False)):
        u = http.get(f"/v1/features/user/{user}", params={"names": ",".join(user_names)})
        p = http.get(f"/v1/features/post/{post}", params={"names": ",".join(post_names)})
        assert u.status_code == 200 and p.status_code == 200, (u.text, p.text)
        as_of = max(u.json()["as_of"], p.json()["as_of"])
        online[(user, post)] = {**u.json()["features"], **p.json()["features"]}
        observations.append(
            {
                "id": f"o{i}",
                "time": as_of,
                "entities": {"user": user, "post": post},
                "labels": {"clicked": i % 2},
            }
        )
    r = http.post("/v1/observations", json={"spine": "next_upvote", "observations": observations})
    assert r.status_code == 201, r.text
    assert r.json()["accepted"] == len(observations)

    for arrival in (False, True):
        out = tmp_path / f"train-{arrival}.parquet"
        args = [
            "training-set",
            "--spine",
            "next_upvote",
            "--features",
            ",".join(names),
            "--out",
            str(out),
        ] + (["--arrival-time"] if arrival else [])
        done = server.cli(*args)
        assert "leakage audit passed" in done.stdout, done.stdout + done.stderr
        rows = _read_parquet(out)
        assert len(rows) == len(observations)
        for row in rows:
            want = online[(row["user"], row["post"])]
            got = {n: row[n] for n in names}
            t = row["observed_at"]
            near = sorted(
                (datetime.fromisoformat(u["ts"].replace("Z", "+00:00")) - t).total_seconds()
                for u in loaded["upvotes"]
                if u["user_id"] == row["user"]
            )
            assert got == want, (row["observation_id"], arrival, t, near[-80:])
            assert row["clicked"] == int(row["observation_id"][1:]) % 2
        report = orjson.loads((tmp_path / f"train-{arrival}.report.json").read_bytes())
        assert report["rows"] == len(observations)
        assert report["leakage_audit"]["passed"] is True
        assert {f["name"] for f in report["features"]} == set(names)
    # entities without events: online and training both give the defaults
    assert online[("u11", "p11")]["user_upvoted_posts"] == 0
    assert online[("u11", "p11")]["user_last_community"] is None


def test_article_example_each_upvote_excludes_itself(
    server: Server, loaded: dict[str, Any], tmp_path: Path
) -> None:
    subject = loaded["subject"]
    out = tmp_path / "upvotes.parquet"
    names = "user_upvoted_posts,user_communities,post_upvotes"
    done = server.cli(
        "training-set",
        "--spine",
        f"subject:{subject}",
        "--entity",
        "user=user_id",
        "--entity",
        "post=post_id",
        "--label",
        "community=community",
        "--features",
        names,
        "--out",
        str(out),
    )
    assert "leakage audit passed" in done.stdout, done.stdout + done.stderr
    rows = _read_parquet(out)
    upvotes = loaded["upvotes"]
    assert len(rows) == len(upvotes)

    def ms(text: str) -> int:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)

    for row in rows:
        t = int(row["observed_at"].timestamp() * 1000)
        before = [u for u in upvotes if ms(u["ts"]) < t]
        mine = [u for u in before if u["user_id"] == row["user"]]
        assert row["user_upvoted_posts"] == len({u["post_id"] for u in mine})
        assert row["user_communities"] == len({u["community"] for u in mine})
        assert row["post_upvotes"] == sum(u["post_id"] == row["post"] for u in before)
    # the first upvote of the log sees nothing, not even itself
    first = min(rows, key=lambda r: r["observed_at"])
    assert (first["user_upvoted_posts"], first["post_upvotes"]) == (0, 0)


def test_print_sql_and_errors(server: Server, loaded: dict[str, Any], tmp_path: Path) -> None:
    http: httpx.Client = loaded["http"]
    r = http.post(
        "/v1/observations",
        json={"spine": "s1", "entities": {"user": "u1"}, "time": _iso(datetime.now(UTC))},
    )
    assert r.status_code == 201, r.text
    shown = server.cli(
        "training-set", "--spine", "s1", "--features", "user_upvotes_1h", "--print-sql"
    )
    assert "--   user_upvotes_1h@v1: count(), window 1h" in shown.stdout
    assert "FROM `sluicegate`.`events` FINAL" in shown.stdout
    # the printed SQL runs as-is on the store (here through the read-only `sluicegate sql`)
    # and gives the rows the extraction gives
    by_hand = sql(http, shown.stdout)
    extracted = server.cli(
        "training-set",
        "--spine",
        "s1",
        "--features",
        "user_upvotes_1h",
        "--out",
        str(tmp_path / "s1.parquet"),
    )
    assert "1 rows" in extracted.stdout
    rows = _read_parquet(tmp_path / "s1.parquet")
    assert [[r[0], r[-1]] for r in by_hand] == [
        [r["observation_id"], r["user_upvotes_1h"]] for r in rows
    ]
    # a file spine is uploaded as observations and extracted
    spine_csv = tmp_path / "spine.csv"
    spine_csv.write_text(
        "user_id,observed_at,label\nu0,2099-01-01T00:00:00Z,1\nu1,2000-01-01T00:00:00Z,0\n"
    )
    out = tmp_path / "from-file.arrow"
    done = server.cli(
        "training-set",
        "--spine",
        str(spine_csv),
        "--features",
        "user_upvoted_posts",
        "--out",
        str(out),
    )
    assert "2 rows" in done.stdout, done.stdout + done.stderr
    # client mistakes are named, never a 500
    bad = server.cli(
        "training-set",
        "--spine",
        "s1",
        "--features",
        "no_such_feature",
        "--out",
        str(tmp_path / "x.parquet"),
        check=False,
    )
    assert bad.returncode == 1 and "no_such_feature" in bad.stderr
    bad = server.cli(
        "training-set",
        "--spine",
        "s1",
        "--features",
        "post_upvotes",
        "--out",
        str(tmp_path / "x.parquet"),
        check=False,
    )
    assert bad.returncode == 1 and "post" in bad.stderr
    r = http.post("/v1/observations", json={"spine": "s1", "entities": {}})
    assert r.status_code == 422 and "entities" in r.json()["message"]
    r = http.post(
        "/v1/training-sets",
        json={"spine": {"observations": "missing"}, "features": ["post_upvotes"]},
    )
    assert r.status_code == 404 and "missing" in r.json()["message"]
