"""First write wins: an event id (per subject) is stored once and counted once. Re-posts
(the same request again, minutes later, after a restart, inside mixed batches) change
nothing: not the physical rows of `events`, not a feature online, not `ingested_at`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
from support.features_helpers import (
    apply,
    read,
    read_until,
    register,
    sql,
    wait_loaded,
)
from support.serving import start_server

if TYPE_CHECKING:
    from tests.integration.conftest import Stack

SCHEMA = {
    "type": "object",
    "properties": {"user_id": {"type": "string"}, "amount": {"type": "integer"}},
    "required": ["user_id", "amount"],
}


def physical_rows(http: httpx.Client) -> int:
    """Rows `events` holds on disk, duplicates included (what a plain count() without
    FINAL sees)."""
    rows = sql(
        http,
        "SELECT total_rows FROM system.tables WHERE database = 'sluicegate' AND name = 'events'",
    )
    return int(rows[0][0])


def state(http: httpx.Client, subject: str) -> list[list[Any]]:
    return sql(
        http,
        f"SELECT event_id, toString(ingested_at), payload FROM events "
        f"WHERE subject = '{subject}' ORDER BY event_id",
    )


def post(http: httpx.Client, subject: str, event: dict[str, Any], key: str) -> None:
    r = http.post(f"/v1/events/{subject}", json=event, headers={"Idempotency-Key": key})
    assert r.status_code == 202, r.text


def sentinels(http: httpx.Client, subject: str, tag: str) -> None:
    """One new event per entity key after the re-posts: the gateway keys records by entity,
    so once a key's sentinel is in `events`, every earlier post of that key was loaded."""
    for user in ("u0", "u1", "u2"):
        post(http, subject, {"user_id": user, "amount": 0}, f"sentinel-{tag}-{user}")


def originals(rows: list[list[Any]]) -> list[list[Any]]:
    return [row for row in rows if row[0].startswith("k") and row[0] != "k-new"]


def test_reposts_change_nothing(
    stack: Stack, tmp_path: Path, unique: str, pytestconfig: pytest.Config
) -> None:
    subject = f"fww.pay{unique}"
    start = start_server
    server = start(tmp_path / "sg", extra_env={"SLUICEGATE_MATERIALIZE_TOPICS": f"sg.{subject}"})
    try:
        with server.client() as http:
            register(http, subject, SCHEMA, entity_key=["user_id"], event_time=None)
            apply(
                http,
                {
                    "name": f"spent{unique}",
                    "entity": {"type": "user"},
                    "source": subject,
                    "aggregation": "sum(amount)",
                },
                {
                    "name": f"payments{unique}",
                    "entity": {"type": "user"},
                    "source": subject,
                    "aggregation": "count()",
                },
            )
            for i in range(10):
                post(http, subject, {"user_id": f"u{i % 3}", "amount": i}, f"k{i}")
            wait_loaded(http, subject, 10)
            before = state(http, subject)
            rows_before = physical_rows(http)
            names = [f"spent{unique}", f"payments{unique}"]
            online = read(http, "user", ["u0", "u1", "u2"], names)

            # the same requests again, with other payloads: first write wins
            for i in range(10):
                post(http, subject, {"user_id": f"u{i % 3}", "amount": 1000 + i}, f"k{i}")
            # inside a mixed batch, beside a new event
            batch = [
                {"subject": subject, "event": {"user_id": "u0", "amount": 7}, "event_id": "k3"},
                {"subject": subject, "event": {"user_id": "u0", "amount": 5}, "event_id": "k-new"},
            ]
            r = http.post(
                "/v1/events",
                content=orjson.dumps(batch),
                headers={"Content-Type": "application/json"},
            )
            assert r.status_code in (202, 207), r.text
            sentinels(http, subject, "a")
            wait_loaded(http, subject, 14)  # 10 + k-new + 3 sentinels
            assert physical_rows(http) == rows_before + 4
            assert originals(state(http, subject)) == before

            # online: only k-new (u0, 5) and the sentinels (one payment of 0 each) count
            now = read_until(
                http,
                "user",
                ["u0", "u1", "u2"],
                names,
                lambda b: (
                    b["results"][0]["features"][names[1]]
                    == online["results"][0]["features"][names[1]] + 2
                ),
            )
            for was, got, extra in zip(online["results"], now["results"], (5, 0, 0), strict=True):
                count = 2 if got["key"] == "u0" else 1
                assert got["features"][names[1]] == was["features"][names[1]] + count
                assert got["features"][names[0]] == was["features"][names[0]] + extra
        server.stop()

        # after a restart on the same data directory
        server = start(
            tmp_path / "sg", extra_env={"SLUICEGATE_MATERIALIZE_TOPICS": f"sg.{subject}"}
        )
        with server.client() as http:
            for i in range(10):
                post(http, subject, {"user_id": f"u{i % 3}", "amount": 2000 + i}, f"k{i}")
            sentinels(http, subject, "b")
            wait_loaded(http, subject, 17)  # and 3 more sentinels
            assert physical_rows(http) == rows_before + 7
            assert originals(state(http, subject)) == before
    finally:
        server.stop()
