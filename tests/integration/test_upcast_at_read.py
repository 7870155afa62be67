"""Every event is read as its subject's latest version: a v1 -> v2 -> v3 chain (add with a
default, rename, remove, derive) with events loaded under each version, then features created
after the chain. Online values (backfilled and fed at insert), training sets in both time
modes and the subject's `latest_` view equal a brute-force Python evaluation over the
payloads `POST /v1/subjects/S/upcast` returns."""

from __future__ import annotations

import io
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pyarrow.parquet as pq
import pytest
from support.features_helpers import apply, read, wait_loaded
from support.serving import start_server

from materializer.features import view_name

if TYPE_CHECKING:
    from tests.integration.conftest import Stack

V1 = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string"},
        "amount": {"type": "integer"},
        "note": {"type": "string"},
    },
    "required": ["user_id", "amount"],
}
V2 = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string"},
        "amount": {"type": "integer"},
        "note": {"type": "string"},
        "channel": {"type": "string"},
    },
    "required": ["user_id", "amount"],
}
V3 = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string"},
        "value": {"type": "integer"},
        "channel": {"type": "string"},
        "big": {"type": "boolean"},
    },
    "required": ["user_id", "value"],
}
USERS = [f"u{i}" for i in range(6)]


def _register(
    http: httpx.Client,
    subject: str,
    schema: dict[str, Any],
    migration: list[dict[str, Any]] | None = None,
) -> None:
    body: dict[str, Any] = {
        "schema": orjson.dumps(schema).decode(),
        "schemaType": "JSON",
        "metadata": {"entity_key": ["user_id"]},
    }
    if migration:
        body["migration"] = migration
    r = http.post(f"/v1/subjects/{subject}/versions", json=body)
    assert r.status_code in (200, 201), r.text


def _post(
    http: httpx.Client, subject: str, events: list[dict[str, Any]], version: int | None = None
) -> None:
    query = f"?version={version}" if version else ""
    r = http.post(f"/v1/events/{subject}/batch{query}", json=events)
    assert r.status_code == 202, r.text


def test_features_and_training_sets_read_every_event_as_the_latest_version(
    stack: Stack, tmp_path: Path, unique: str, pytestconfig: pytest.Config
) -> None:
    rng = random.Random(7)
    subject = f"upc.pay{unique}"
    server = start_server(
        tmp_path / "sg", extra_env={"SLUICEGATE_MATERIALIZE_TOPICS": f"sg.{subject}"}
    )
    written: list[tuple[int, dict[str, Any]]] = []
    try:
        with server.client() as http:
            _register(http, subject, V1)
            v1 = [
                {"user_id": rng.choice(USERS), "amount": rng.randint(1, 90), "note": "n"}
                for _ in range(40)
            ]
            _post(http, subject, v1)
            wait_loaded(http, subject, 40)  # stored as version 1, before version 2 exists
            written += [(1, e) for e in v1]

            _register(http, subject, V2, [{"op": "add", "field": "channel", "default": "web"}])
            v2 = [
                {
                    "user_id": rng.choice(USERS),
                    "amount": rng.randint(1, 90),
                    "channel": rng.choice(["web", "app"]),
                }
                for _ in range(30)
            ]
            _post(http, subject, v2)
            wait_loaded(http, subject, 70)
            written += [(2, e) for e in v2]

            _register(
                http,
                subject,
                V3,
                [
                    {"op": "rename", "from": "amount", "to": "value"},
                    {"op": "drop", "field": "note"},
                    {"op": "derive", "field": "big", "expr": "value > 50"},
                ],
            )
            v3 = [
                {
                    "user_id": rng.choice(USERS),
                    "value": rng.randint(1, 90),
                    "channel": rng.choice(["web", "app"]),
                    "big": False,
                }
                for _ in range(20)
            ]
            _post(http, subject, v3)
            wait_loaded(http, subject, 90)
            written += [(3, e) for e in v3]

            names = [f"web{unique}", f"spent{unique}", f"big{unique}"]
            apply(
                http,
                {
                    "name": names[0],
                    "entity": {"type": "user"},
                    "source": subject,
                    "aggregation": "countIf(channel = 'web')",
                },
                {
                    "name": names[1],
                    "entity": {"type": "user"},
                    "source": subject,
                    "aggregation": "sum(value)",
                },
                {
                    "name": names[2],
                    "entity": {"type": "user"},
                    "source": subject,
                    "aggregation": "countIf(big)",
                },
            )
            # a late producer still on version 1, after the features exist (views at insert)
            late = [{"user_id": rng.choice(USERS), "amount": rng.randint(1, 90)} for _ in range(15)]
            _post(http, subject, late, version=1)
            wait_loaded(http, subject, 105)
            written += [(1, e) for e in late]

            # the brute force: every event as the registry upcasts it
            expected: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(names, 0))
            upcast_rows = []
            for version, event in written:
                r = http.post(
                    f"/v1/subjects/{subject}/upcast", json={"version": version, "payload": event}
                )
                assert r.status_code == 200, r.text
                payload = r.json()["payload"]
                upcast_rows.append(
                    (payload["user_id"], payload["value"], payload["channel"], payload["big"])
                )
                row = expected[payload["user_id"]]
                row[names[0]] += payload.get("channel") == "web"
                row[names[1]] += payload["value"]
                row[names[2]] += bool(payload.get("big"))
            assert sum(r[names[0]] for r in expected.values()) > 40  # v1 events count as web

            online = read(http, "user", USERS, names)["results"]
            got = {r["key"]: {n: r["features"][n] for n in names} for r in online}
            assert got == {u: expected[u] for u in USERS}

            # a training set at a time after every event gives the same values
            obs = [
                {"id": u, "entities": {"user": u}, "time": "2099-01-01T00:00:00Z"} for u in USERS
            ]
            r = http.post("/v1/observations", json={"spine": f"s{unique}", "observations": obs})
            assert r.status_code == 201, r.text
            for arrival_time in (False, True):  # both time modes
                r = http.post(
                    "/v1/training-sets",
                    json={
                        "spine": {"observations": f"s{unique}"},
                        "features": names,
                        "arrival_time": arrival_time,
                    },
                )
                assert r.status_code == 200, r.text
                rows = pq.read_table(io.BytesIO(r.content)).to_pylist()
                training = {row["observation_id"]: {n: row[n] for n in names} for row in rows}
                assert training == {u: expected[u] for u in USERS}, arrival_time

            # a subject spine: every event a row, its labels read as version 3 too
            r = http.post(
                "/v1/training-sets",
                json={
                    "spine": {
                        "subject": subject,
                        "entities": {"user": "user_id"},
                        "labels": {"value": "value", "channel": "channel", "big": "big"},
                    },
                    "features": [names[0]],
                },
            )
            assert r.status_code == 200, r.text
            rows = pq.read_table(io.BytesIO(r.content)).to_pylist()
            got_rows = sorted((r["user"], r["value"], r["channel"], r["big"]) for r in rows)
            assert got_rows == sorted(upcast_rows)

            # the SQL surface: the subject's view shows every event as version 3
            view = view_name(subject)
            deadline = time.monotonic() + 30
            while True:
                r = http.post(
                    "/v1/sql",
                    json={
                        "query": f"SELECT count(), "
                        f"countIf(channel = 'web'), sum(value), countIf(big) FROM {view}"
                    },
                )
                if r.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert r.status_code == 200, r.text
            totals = [sum(row[n] for row in expected.values()) for n in names]
            assert r.json()["rows"] == [[len(written), *totals]]
    finally:
        server.stop()
