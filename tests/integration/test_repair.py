"""Repairing refused records with the real stack: a gateway rejection, stored in ClickHouse
beside the dead letters, replayed with a corrected body keeps its original event id and
event time and lands once (a second replay is 409); a dead-lettered record is refused
while it still cannot load and replays exactly as it was once its subject is fixed. Other
teams can neither read nor replay them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from support.features_helpers import own_topics, produce, sql, wait_loaded
from support.gateway_helpers import create_token
from support.serving import start_server

from sluicegate.envelope import Envelope, Source, iso_to_ms, new_event_id

if TYPE_CHECKING:
    from tests.integration.conftest import Stack

SCHEMA = {
    "type": "object",
    "properties": {"user_id": {"type": "string"}, "amount": {"type": "integer"}},
    "required": ["user_id", "amount"],
}


def _register(http: httpx.Client, subject: str) -> int:
    r = http.post(
        f"/v1/subjects/{subject}/versions",
        json={
            "schema": orjson.dumps(SCHEMA).decode(),
            "schemaType": "JSON",
            "metadata": {"owner": "shop", "entity_key": ["user_id"]},
        },
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _until(what: str, probe: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_rejections_replay_once_with_their_id_and_time(
    stack: Stack, tmp_path: Path, unique: str
) -> None:
    subject = f"fix.pay{unique}"
    server = start_server(tmp_path / "sg", extra_env=own_topics(unique))
    try:
        with server.client() as http:
            _register(http, subject)
            checkout = create_token(http, "checkout", subjects=subject)  # a producing team
            with server.client(checkout) as producer:
                r = producer.post(f"/v1/events/{subject}", json={"user_id": "u1", "amount": "ten"})
            assert r.status_code == 422, r.text
            rejection_id = r.json()["rejection_id"]

            listed = http.get(f"/v1/rejections/{subject}").json()["rejections"]
            [rejection] = [x for x in listed if x["id"] == rejection_id]
            assert rejection["replayed"] is None and rejection["violations"]
            assert rejection["producer"] == "checkout"
            # queryable in ClickHouse beside dead_letters (an admin's SQL)
            _until(
                "the rejection in ClickHouse",
                lambda: sql(http, f"SELECT count() FROM rejections WHERE id = '{rejection_id}'")[0][
                    0
                ],
            )

            other = create_token(http, "growth")
            with server.client(other) as foreign:
                assert foreign.get(f"/v1/rejections/{subject}").status_code == 403
                r = foreign.post(
                    f"/v1/rejections/{subject}/{rejection_id}/replay",
                    json={"user_id": "u1", "amount": 10},
                )
                assert r.status_code == 403, r.text
                r = foreign.post("/v1/sql", json={"query": "SELECT * FROM rejections"})
                assert r.status_code == 403 and r.json()["error_code"] == 40303, r.text

            listed = server.cli("events", "rejections", subject).stdout
            assert rejection_id in listed and "not replayed" in listed

            # as it was sent it is still invalid: 422 with the violations, nothing marked
            r = http.post(f"/v1/rejections/{subject}/{rejection_id}/replay")
            assert r.status_code == 422, r.text
            assert r.json()["violations"][0]["path"] == "$.amount"
            assert "rejection_id" not in r.json()  # a replay's refusal is not recorded again

            r = http.post(
                f"/v1/rejections/{subject}/{rejection_id}/replay",
                json={"user_id": "u1", "amount": 10},
            )
            assert r.status_code == 202, r.text
            event_id = r.json()["event_id"]
            assert event_id == rejection["event_id"]
            assert r.json()["replayed"]["team"] == "admin"

            r = http.post(
                f"/v1/rejections/{subject}/{rejection_id}/replay",
                json={"user_id": "u1", "amount": 11},
            )
            assert r.status_code == 409 and r.json()["error_code"] == 40904, r.text

            wait_loaded(http, subject, 1)
            [[stored_id, occurred, amount, producer_team]] = sql(
                http,
                "SELECT event_id, toUnixTimestamp64Milli(occurred_at), "
                f"JSONExtractInt(payload, 'amount'), producer FROM events "
                f"WHERE subject = '{subject}'",
            )
            assert stored_id == event_id and amount == 10
            assert producer_team == "admin"  # corrected by admin: not in checkout's name
            assert occurred == iso_to_ms(rejection["received_at"])  # its original time
            listed = http.get(f"/v1/rejections/{subject}").json()["rejections"]
            [rejection] = [x for x in listed if x["id"] == rejection_id]
            assert rejection["replayed"]["event_id"] == event_id
    finally:
        server.stop()


def test_dead_letters_replay_once_fixed(stack: Stack, tmp_path: Path, unique: str) -> None:
    known, unknown = f"fix.ok{unique}", f"fix.late{unique}"
    server = start_server(tmp_path / "sg", extra_env=own_topics(unique))
    try:
        with server.client() as http:
            schema_id = _register(http, known)
            env = Envelope(
                event_id=new_event_id(),
                subject=unknown,  # not registered yet: the record cannot be loaded
                schema_id=schema_id,
                schema_version=1,
                entity_key="u7",
                occurred_at=1_700_000_000_123,
                ingested_at=1_700_000_000_456,
                source=Source.HTTP,
                producer="shop",
                payload={"user_id": "u7", "amount": 3},
            )
            produce(stack.kafka_bootstrap, [env])
            letters = _until(
                "the dead letter",
                lambda: [
                    d
                    for d in http.get("/v1/dead-letters", params={"limit": 1000}).json()[
                        "dead_letters"
                    ]
                    if d["topic"] == f"sg.{unknown}"
                ],
            )
            [letter] = letters
            assert "not registered" in letter["error"] and letter["replayable"]
            dead_id = letter["id"]

            r = http.post(f"/v1/dead-letters/{dead_id}/replay")
            assert r.status_code == 422 and "still cannot be loaded" in r.json()["message"]

            other = create_token(http, "growth")
            with server.client(other) as foreign:
                assert foreign.get("/v1/dead-letters").status_code == 403

            listed = server.cli("events", "dead-letters", "--format", "tsv").stdout
            assert dead_id in listed

            _register(http, unknown)  # the fix
            done = server.cli("events", "replay", "--dead-letter", dead_id)
            assert f"replayed as event {env.event_id} to sg.{unknown}" in done.stdout
            r = http.post(f"/v1/dead-letters/{dead_id}/replay")
            assert r.status_code == 409, r.text
            assert r.json()["replayed"]["event_id"] == env.event_id

            wait_loaded(http, unknown, 1)
            [[stored_id, occurred]] = sql(
                http,
                "SELECT event_id, toUnixTimestamp64Milli(occurred_at) FROM events "
                f"WHERE subject = '{unknown}'",
            )
            assert (stored_id, occurred) == (env.event_id, env.occurred_at)
            [letter] = [
                d
                for d in http.get(f"/v1/dead-letters?subject={unknown}").json()["dead_letters"]
                if d["id"] == dead_id
            ]
            assert letter["replayed"]["event_id"] == env.event_id
    finally:
        server.stop()
