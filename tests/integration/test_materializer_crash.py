"""kill -9 of `sluicegate serve` in the middle of a 100,000-event stream, twice, then a
restart on the same data directory: every produced event is in `events` exactly once."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.mz_support import (
    committed,
    delete_topics,
    envelope,
    produce,
    producer,
    register,
    sql,
    wait_for,
)
from support.serving import start_server

TOTAL = 100_000
SCHEMA = {
    "type": "object",
    "properties": {"user": {"type": "string"}, "i": {"type": "integer"}},
    "required": ["user", "i"],
}


def _loaded(server: Any, subject: str) -> int:
    try:
        with server.client() as http:
            rows = sql(http, f"SELECT count() FROM events WHERE subject = '{subject}'")
    except Exception:  # the server may be starting up or just killed
        return -1
    return int(rows[0][0])


def _kill_when(server: Any, subject: str, at_least: int) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        n = _loaded(server, subject)
        if n >= at_least:
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait(10)
            return n
        time.sleep(0.05)
    raise AssertionError(f"{subject}: fewer than {at_least} events loaded in 120 s")


def test_kill_9_mid_stream_loses_and_doubles_nothing(
    tmp_path: Path, stack: Any, unique: str, request: pytest.FixtureRequest
) -> None:
    start = start_server
    bootstrap: str = stack.kafka_bootstrap
    env = {  # only this test's topic: the shared broker holds other tests' backlogs
        "SLUICEGATE_KAFKA_BOOTSTRAP": bootstrap,
        "SLUICEGATE_MATERIALIZE_TOPICS": rf"^sg\.mz\.crash{unique}$",
    }
    data_dir = tmp_path / "sg"
    subject = f"mz.crash{unique}"
    server = start(data_dir, env)
    failures: list[BaseException] = []
    try:
        with server.client() as http:
            schema_id, version = register(http, subject, SCHEMA, "JSON")

        def stream() -> None:  # ~20,000 events/s, so the kills land mid-stream
            try:
                p = producer(bootstrap)
                for chunk in range(0, TOTAL, 2_000):
                    started = time.monotonic()
                    produce(
                        p,
                        (
                            envelope(
                                subject,
                                schema_id,
                                version,
                                f"{unique}-{i}",
                                f"user{i % 977}",
                                1_700_000_000_000 + i,
                                {"user": f"user{i % 977}", "i": i},
                            )
                            for i in range(chunk, chunk + 2_000)
                        ),
                        lambda e: orjson.dumps(e.payload),
                    )
                    time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))
            except BaseException as exc:
                failures.append(exc)

        producing = threading.Thread(target=stream)
        producing.start()
        first_kill = _kill_when(server, subject, 20_000)
        server = start(data_dir, env)
        second_kill = _kill_when(server, subject, 60_000)
        server = start(data_dir, env)
        producing.join(120)
        assert not failures, failures
        assert first_kill < TOTAL and second_kill < TOTAL  # both kills were mid-stream

        with server.client() as http:
            group = "sluicegate-materializer-" + sql(http, "SELECT toString(id) FROM store")[0][0]
        # every record consumed and its load committed: nothing is left to load (twice)
        wait_for(
            lambda: committed(bootstrap, group, f"sg.{subject}") >= TOTAL,
            120,
            "the loader to commit every record",
        )
        with server.client() as http:
            count, distinct, id_sum, lo, hi = sql(
                http,
                "SELECT count(), uniqExact(event_id), "
                f"sum(toUInt64(substring(event_id, {len(unique) + 2}))), "
                "min(JSONExtractUInt(payload, 'i')), max(JSONExtractUInt(payload, 'i')) "
                f"FROM events WHERE subject = '{subject}'",
            )[0]
            dead = sql(http, f"SELECT count() FROM dead_letters WHERE topic = 'sg.{subject}'")
        assert (count, distinct) == (TOTAL, TOTAL)
        assert int(id_sum) == TOTAL * (TOTAL - 1) // 2  # checksum over the event ids
        assert (lo, hi) == (0, TOTAL - 1)
        assert dead == [[0]]
    finally:
        server.stop()
        delete_topics(bootstrap, subject)
