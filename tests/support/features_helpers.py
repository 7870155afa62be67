"""Helpers of the features integration tests: the article's subjects, events posted through
the real gateway (or CDC-shaped records produced to the governed topic, as the CDC bridge
does), feature definitions applied through the real API."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from sluicegate.envelope import CdcOp, Envelope, Source, frame, new_event_id, now_ms
from sluicegate.naming import topic_for_subject

UPVOTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string"},
        "post_id": {"type": "string"},
        "community": {"type": "string"},
        "ts": {"type": "string", "format": "date-time"},
    },
    "required": ["user_id", "post_id", "ts"],
    "additionalProperties": False,
}
MEMBERSHIP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "user_id": {"type": "string"},
        "community_id": {"type": "integer"},
        "role": {"type": "string"},
    },
    "required": ["id"],
}
DAY_MS = 86_400_000


def own_topics(unique: str) -> dict[str, str]:
    """Server settings loading only this test's governed topics (every subject of a test
    ends with its unique suffix), not whatever else the shared broker holds."""
    return {"SLUICEGATE_MATERIALIZE_TOPICS": rf"^sg\..*{unique}$"}


def iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def register(
    http: httpx.Client,
    subject: str,
    schema: dict[str, Any],
    *,
    entity_key: list[str],
    event_time: str | None,
) -> tuple[int, int]:
    metadata: dict[str, Any] = {"owner": "admin", "entity_key": entity_key}
    if event_time:
        metadata["event_time"] = event_time
    r = http.post(
        f"/v1/subjects/{subject}/versions",
        json={"schema": orjson.dumps(schema).decode(), "schemaType": "JSON", "metadata": metadata},
    )
    assert r.status_code in (200, 201), r.text
    return int(r.json()["id"]), int(r.json().get("version", 1))


def post_events(http: httpx.Client, subject: str, events: list[dict[str, Any]]) -> None:
    """Post through the gateway in batches; every event must be accepted."""
    for i in range(0, len(events), 1000):
        chunk = events[i : i + 1000]
        r = http.post(f"/v1/events/{subject}/batch", json=chunk)
        assert r.status_code == 202, r.text[:500]
        assert r.json()["accepted"] == len(chunk)


def sql(http: httpx.Client, query: str) -> list[list[Any]]:
    r = http.post("/v1/sql", json={"query": query})
    assert r.status_code == 200, r.text
    return r.json()["rows"]  # type: ignore[no-any-return]


def wait_loaded(http: httpx.Client, subject: str, count: int, timeout: float = 300) -> None:
    """Wait until `events` holds ``count`` events of ``subject`` (and not more)."""
    deadline = time.monotonic() + timeout
    n = -1
    while time.monotonic() < deadline:
        n = sql(http, f"SELECT count() FROM events WHERE subject = '{subject}'")[0][0]
        if n >= count:
            assert n == count, f"{subject}: {n} events loaded, expected {count}"
            return
        time.sleep(0.2)
    raise AssertionError(f"{subject}: only {n} of {count} events loaded in {timeout} s")


def apply(http: httpx.Client, *definitions: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    """Apply definitions and wait for their backfill; returns the final job (or the body)."""
    r = http.post("/v1/features/_definitions", json={"definitions": list(definitions)})
    assert r.status_code == 200, r.text
    body = r.json()
    job = body.get("job")
    deadline = time.monotonic() + timeout
    while job and job["state"] == "running":
        assert time.monotonic() < deadline, f"backfill did not finish: {job}"
        time.sleep(0.2)
        job = http.get(f"/v1/features/_jobs/{job['id']}").json()
    if job:
        assert job["state"] == "done", job
    return {**body, "job": job}


def read(http: httpx.Client, entity_type: str, keys: list[str], names: list[str]) -> dict[str, Any]:
    r = http.post(f"/v1/features/{entity_type}/batch", json={"keys": keys, "names": names})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def read_until(
    http: httpx.Client,
    entity_type: str,
    keys: list[str],
    names: list[str],
    expected: Any,
    timeout: float = 3.0,
) -> dict[str, Any]:
    """Read until ``expected(body)`` holds: a load becomes visible in `events` a moment
    before the views' parts are committed, so fresh values may lag by milliseconds."""
    deadline = time.monotonic() + timeout
    while True:
        body = read(http, entity_type, keys, names)
        if expected(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


@dataclass
class Upvotes:
    """A month of upvotes, known in Python so expected values are computed independently."""

    events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def random(
        cls, n: int, users: int, posts: int, *, now: int, days: int = 30, seed: int = 7
    ) -> Upvotes:
        rng = random.Random(seed)
        out = []
        for _ in range(n):
            # whole seconds, never within 2 minutes of the 7-day edge, nothing in the future
            age = rng.randrange(120_000, days * DAY_MS)
            if abs(age - 7 * DAY_MS) < 120_000:
                age += 240_000
            ms = (now - age) // 1000 * 1000
            out.append(
                {
                    "user_id": f"u{rng.randrange(users)}",
                    "post_id": f"p{rng.randrange(posts)}",
                    "ts": iso(ms),
                }
            )
        return cls(out)

    @staticmethod
    def ms(event: dict[str, Any]) -> int:
        return int(datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp() * 1000)

    def distinct_posts(self, user: str, at: int, window_ms: int | None = None) -> int:
        return len(
            {
                e["post_id"]
                for e in self.events
                if e["user_id"] == user
                and self.ms(e) < at
                and (window_ms is None or self.ms(e) >= at - window_ms)
            }
        )

    def post_upvotes(self, post: str, at: int) -> int:
        return sum(1 for e in self.events if e["post_id"] == post and self.ms(e) < at)


def cdc_envelopes(
    subject: str, schema_id: int, changes: list[tuple[str, int, dict[str, Any]]]
) -> list[Envelope]:
    """CDC-shaped envelopes, as the CDC bridge produces them: (op, commit ms, row image);
    the row key is the row's id, deletes carry the before-image."""
    return [
        Envelope(
            event_id=new_event_id(),
            subject=subject,
            schema_id=schema_id,
            schema_version=1,
            entity_key=str(row["id"]),
            occurred_at=ms,
            ingested_at=now_ms(),
            source=Source.CDC,
            producer="cdc",
            payload=row,
            op=CdcOp(op),
            position={"lsn": str(i), "txid": str(i)},
        )
        for i, (op, ms, row) in enumerate(changes)
    ]


def produce(bootstrap: str, envelopes: list[Envelope]) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    errors: list[Any] = []
    for env in envelopes:
        p.produce(
            topic_for_subject(env.subject),
            key=env.entity_key.encode(),
            value=frame(env.schema_id, orjson.dumps(env.payload)),
            headers=env.headers(),
            on_delivery=lambda err, _msg: errors.append(err) if err else None,
        )
    assert p.flush(60) == 0
    assert not errors, errors


def delete_topics(bootstrap: str, *subjects: str) -> None:
    """Remove a test's topics so other stores on the shared broker do not load them."""
    import contextlib

    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.delete_topics([topic_for_subject(s) for s in subjects], operation_timeout=30)
    for future in futures.values():
        with contextlib.suppress(Exception):
            future.result()
