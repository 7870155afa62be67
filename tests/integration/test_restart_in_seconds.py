"""A restart costs seconds: after kill -9 of `sluicegate serve` and a restart on the same
data directory, gateway events and CDC changes acknowledged after the restart reach
`events` at once (every consumer the process owns rejoins its group immediately instead
of waiting out the dead member's session), and a restart with another
SLUICEGATE_MATERIALIZE_TOPICS loads the newly named topic."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.cdc_helpers import CdcHarness
from support.serving import start_server

# The promise: 5 s. Without static membership a restarted consumer waits out the dead
# member's 10 s session (6-7 s after the restart here), so the bound is the promise
# itself. The measured figures are printed (pytest -s).
BOUND_S = 5.0

SCHEMA = '{"type": "object", "properties": {"user_id": {"type": "string"}}}'


@pytest.fixture
def cdc(
    stack,
    tmp_path: Path,
    unique: str,  # type: ignore[no-untyped-def]
    request: pytest.FixtureRequest,
) -> Iterator[CdcHarness]:
    h = CdcHarness(stack, tmp_path, unique, start_server)
    yield h
    h.cleanup()


def _count(http: httpx.Client, subject: str) -> int:
    r = http.post(
        "/v1/sql", json={"query": f"SELECT count() FROM events WHERE subject = '{subject}'"}
    )
    return int(r.json()["rows"][0][0]) if r.status_code == 200 else -1


def _seconds_until(http: httpx.Client, counts: dict[str, int], timeout: float = 120) -> float:
    started = time.monotonic()
    while any(_count(http, s) < n for s, n in counts.items()):
        assert time.monotonic() - started < timeout, {s: _count(http, s) for s in counts}
        time.sleep(0.1)
    return time.monotonic() - started


def _kill(cdc: CdcHarness) -> None:
    assert cdc.server is not None
    os.kill(cdc.server.process.pid, signal.SIGKILL)
    cdc.server.process.wait(30)


def test_kill_9_then_new_events_and_changes_arrive_in_seconds(cdc: CdcHarness, unique: str) -> None:
    table = cdc.create_table("id int PRIMARY KEY, name text NOT NULL")
    cdc.write_config([{"name": table}])
    server = cdc.start()
    cdc.apply()
    http_subject, cdc_subject = f"restart.clicks{unique}", cdc.subject(table)
    with server.client() as http:
        r = http.post(
            f"/subjects/{http_subject}/versions", json={"schema": SCHEMA, "schemaType": "JSON"}
        )
        assert r.status_code == 200, r.text
        cdc.sql(*(f"INSERT INTO {table} VALUES ({i}, 'n{i}')" for i in range(1, 6)))
        for i in range(5):
            assert (
                http.post(f"/v1/events/{http_subject}", json={"user_id": f"u{i}"}).status_code
                == 202
            )
        _seconds_until(http, {http_subject: 5, cdc_subject: 5})
        # CDC events keep their source position (LSN, transaction id); http events have none
        r = http.post(
            "/v1/sql",
            json={
                "query": (
                    "SELECT source, countIf(source_lsn IS NULL), countIf(source_txid IS NULL), "
                    "arraySort(groupArray(source_lsn)) = groupArray(source_lsn) FROM "
                    "(SELECT * FROM events WHERE subject IN "
                    f"('{http_subject}', '{cdc_subject}') ORDER BY occurred_at, source_lsn) "
                    "GROUP BY source ORDER BY source"
                )
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [["cdc", 0, 0, True], ["http", 5, 5, True]]

    figures = []
    for round_ in (1, 2):
        _kill(cdc)
        server = cdc.start()  # returns once /healthz answers
        with server.client() as http:
            n = _count(http, http_subject)
            for i in range(5):
                assert (
                    http.post(f"/v1/events/{http_subject}", json={"user_id": f"v{i}"}).status_code
                    == 202
                )
            changes = _count(http, cdc_subject)
            cdc.sql(*(f"INSERT INTO {table} VALUES ({100 * round_ + i}, 'm')" for i in range(5)))
            took = _seconds_until(http, {http_subject: n + 5, cdc_subject: changes + 5})
            figures.append(took)
            status = cdc.bridge_status()
            assert all(t["state"] == "running" for t in status["tables"]), status
            # counted from the governed topic, not since this process started
            (table_status,) = status["tables"]
            assert table_status["changes"] <= 5 < changes + 5 <= table_status["changes_in_log"]
    print(f"kill -9 -> new events and CDC changes in events: {figures} s")
    assert max(figures) < BOUND_S, figures


def test_restart_with_another_subscription_loads_the_new_topic(
    stack,
    tmp_path: Path,
    unique: str,  # type: ignore[no-untyped-def]
    pytestconfig: pytest.Config,
) -> None:
    start = start_server
    first, second = f"narrow.a{unique}", f"narrow.b{unique}"
    server = start(tmp_path / "sg", extra_env={"SLUICEGATE_MATERIALIZE_TOPICS": f"sg.{first}"})
    try:
        with server.client() as http:
            for subject in (first, second):
                r = http.post(
                    f"/subjects/{subject}/versions", json={"schema": SCHEMA, "schemaType": "JSON"}
                )
                assert r.status_code == 200, r.text
                assert (
                    http.post(
                        f"/v1/events/{subject}/batch", json=[{"user_id": "u"}] * 10
                    ).status_code
                    == 202
                )
            _seconds_until(http, {first: 10})
            assert _count(http, second) == 0
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(30)
        server = start(
            tmp_path / "sg",
            extra_env={"SLUICEGATE_MATERIALIZE_TOPICS": f"^sg\\.narrow\\..*{unique}"},
        )
        with server.client() as http:
            took = _seconds_until(http, {first: 10, second: 10})
            print(f"restart with another subscription -> its topic loaded in {took:.1f} s")
            assert _count(http, first) == 10  # nothing reloaded twice
    finally:
        server.stop()
