"""First write wins: an event id (per subject) is stored once and counted once. Re-posts
(the same request again, minutes later, after a restart, inside mixed batches) change
nothing: not the physical rows of `events`, not a feature online, not `ingested_at`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
from features_helpers import (
    apply,
    read,
    read_until,
    register,
    server_starter,
    sql,
    wait_loaded,
)

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
    rows = sql(http, "SELECT total_rows FROM system.tables "
                     "WHERE database = 'sluicegate' AND name = 'events'")
    return int(rows[0][0])


def state(http: httpx.Client, subject: str) -> list[list[Any]]:
    return sql(http, f"SELECT event_id, toString(ingested_at), payload FROM events "
                     f"WHERE subject = '{subject}' ORDER BY event_id")


def post(http: httpx.Client, subject: str, event: dict[str, Any], key: str) -> None:
    r = http.post(f"/v1/events/{subject}", json=event, headers={"Idempotency-Key": key})
    assert r.status_code == 202, r.text


def test_reposts_change_nothing(stack: Stack, tmp_path: Path, unique: str,
                                pytestconfig: pytest.Config) -> None:
    subject = f"fww.pay{unique}"
    start = server_starter(pytestconfig)
    server = start(tmp_path / "sg", extra_env={"SLUICEGATE_MATERIALIZE_TOPICS": f"sg.{subject}"})
    try:
        with server.client() as http:
            register(http, subject, SCHEMA, entity_key=["user_id"], event_time=None)
            apply(http, {"name": f"spent{unique}", "entity": {"type": "user"},
                         "source": subject, "aggregation": "sum(amount)"},
                  {"name": f"payments{unique}", "entity": {"type": "user"},
                   "source": subject, "aggregation": "count()"})
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
            batch = [{"subject": subject, "event": {"user_id": "u0", "amount": 7},
                      "event_id": "k3"},
                     {"subject": subject, "event": {"user_id": "u0", "amount": 5},
                      "event_id": "k-new"}]
            r = http.post("/v1/events", content=orjson.dumps(batch),
                          headers={"Content-Type": "application/json"})
            assert r.status_code in (202, 207), r.text
            wait_loaded(http, subject, 11)
            time.sleep(1)  # let any copy that would land, land
            assert physical_rows(http) == rows_before + 1
            after = state(http, subject)
            assert [row for row in after if row[0] != "k-new"] == before

            # online: only k-new counts (user u0: one more payment of 5)
            now = read_until(http, "user", ["u0", "u1", "u2"], names,
                             lambda b: b["results"][0] != online["results"][0])
            assert now["results"][1:] == online["results"][1:]
            was, got = online["results"][0]["features"], now["results"][0]["features"]
            assert got[f"payments{unique}"] == was[f"payments{unique}"] + 1
            assert got[f"spent{unique}"] == was[f"spent{unique}"] + 5
        server.stop()

        # after a restart on the same data directory
        server = start(tmp_path / "sg",
                       extra_env={"SLUICEGATE_MATERIALIZE_TOPICS": f"sg.{subject}"})
        with server.client() as http:
            for i in range(10):
                post(http, subject, {"user_id": f"u{i % 3}", "amount": 2000 + i}, f"k{i}")
            post(http, subject, {"user_id": "u9", "amount": 1}, "k-last")
            wait_loaded(http, subject, 12)
            time.sleep(1)
            assert physical_rows(http) == rows_before + 2
            assert [row for row in state(http, subject)
                    if row[0] not in ("k-new", "k-last")] == before
    finally:
        server.stop()
