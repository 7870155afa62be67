"""Kafka down: the gateway answers 503 with Retry-After (never a false accept), and after
the broker comes back no acknowledged event is missing, in Kafka or in `events` (the same
server's materializer loads each once).

Runs its OWN single-node broker on other ports (stack/kafka-up.sh with its own run
directory), so stopping it never touches the shared stack.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from support.gateway_helpers import ORDER_SCHEMA, consume, register
from support.serving import start_server

from gateway.client import SluicegateClient
from sluicegate.naming import topic_for_subject

if TYPE_CHECKING:
    from tests.conftest import Server
    from tests.integration.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]
SUBJECT = "outage.order"
PRODUCE_TIMEOUT_S = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnBroker:
    """A throw-away broker of our own, started and stopped by pid file."""

    def __init__(self, run_dir: Path) -> None:
        self.port = _free_port()
        self.env = {
            **os.environ,
            "SLUICEGATE_RUN_DIR": str(run_dir),
            "SLUICEGATE_KAFKA_PORT": str(self.port),
            "SLUICEGATE_KAFKA_CONTROLLER_PORT": str(_free_port()),
            "SLUICEGATE_KAFKA_HEAP": "-Xms256m -Xmx256m",
            "SLUICEGATE_KAFKA_PARTITIONS": "2",
        }
        self.pid_file = run_dir / "kafka" / "broker.pid"
        self.bootstrap = f"127.0.0.1:{self.port}"

    def start(self) -> None:
        subprocess.run(
            ["bash", str(ROOT / "stack" / "kafka-up.sh")],
            env=self.env,
            check=True,
            timeout=180,
            capture_output=True,
        )

    def kill(self) -> None:
        """Stop it the hard way (a crash), and wait until it is gone."""
        if not self.pid_file.exists():
            return
        pid = int(self.pid_file.read_text().strip())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[OwnBroker]:
    own = OwnBroker(tmp_path / "run")
    yield own
    own.kill()


@pytest.fixture
def gateway_on_own_broker(
    broker: OwnBroker, stack: Stack, tmp_path: Path, pytestconfig: pytest.Config
) -> Iterator[Server]:
    srv = start_server(
        tmp_path / "sg",
        {
            "SLUICEGATE_KAFKA_BOOTSTRAP": broker.bootstrap,
            "SLUICEGATE_PRODUCE_TIMEOUT_S": str(PRODUCE_TIMEOUT_S),
        },
    )
    yield srv
    srv.stop()


def _order(i: int) -> dict[str, Any]:
    return {"order_id": f"o-{i}", "ts": "2026-03-01T10:00:00Z", "amount": i}


def _assert_503(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1


@pytest.mark.timeout(600)
def test_kafka_down_gives_503_and_no_acknowledged_event_is_lost(
    broker: OwnBroker, gateway_on_own_broker: Server
) -> None:
    srv = gateway_on_own_broker
    acked: set[str] = set()
    with srv.client() as admin:
        register(
            admin,
            SUBJECT,
            ORDER_SCHEMA,
            "JSON",
            owner="ops",
            entity_key=["order_id"],
            event_time="ts",
        )

        # 1. A broker that was never there: 503 within the produce timeout, not a hang.
        started = time.monotonic()
        _assert_503(admin.post(f"/v1/events/{SUBJECT}", json=_order(0)))
        assert time.monotonic() - started < PRODUCE_TIMEOUT_S + 6
        r = admin.post(f"/v1/events/{SUBJECT}/batch", json=[_order(1), _order(2)])
        _assert_503(r)
        assert [x["status"] for x in r.json()["results"]] == [503, 503]
        assert admin.get("/readyz").status_code == 503

        # 2. The broker comes up: events are accepted.
        broker.start()
        with SluicegateClient(srv.url, srv.admin_token, max_retries=20, max_backoff_s=2) as sg:
            acked.add(sg.post(SUBJECT, _order(10))["event_id"])
            results = sg.post_batch(SUBJECT, [_order(i) for i in range(11, 31)])
        assert [x["status"] for x in results] == [202] * 20
        acked.update(x["event_id"] for x in results)
        assert admin.get("/readyz").status_code == 200

        # 3. The broker crashes: direct posts get 503s, never a 202.
        broker.kill()
        for i in range(40, 43):
            _assert_503(admin.post(f"/v1/events/{SUBJECT}", json=_order(i)))

        # 4. A client keeps retrying through the outage while the broker restarts.
        outcome: dict[str, Any] = {}

        def keep_posting() -> None:
            with SluicegateClient(srv.url, srv.admin_token, max_retries=60, max_backoff_s=2) as sg:
                try:
                    outcome["results"] = sg.post_batch(SUBJECT, [_order(i) for i in range(50, 70)])
                except Exception as exc:  # reported below
                    outcome["error"] = exc

        poster = threading.Thread(target=keep_posting)
        poster.start()
        time.sleep(PRODUCE_TIMEOUT_S + 1)  # at least one attempt fails first
        broker.start()
        poster.join(timeout=240)
        assert not poster.is_alive()
        assert "error" not in outcome, outcome.get("error")
        assert [x["status"] for x in outcome["results"]] == [202] * 20
        acked.update(x["event_id"] for x in outcome["results"])

    # 5. Every acknowledged event is in Kafka (a retried one may be there twice: same id).
    topic = topic_for_subject(SUBJECT)
    seen = _all_event_ids(broker.bootstrap, topic)
    assert acked <= seen, f"acknowledged but missing: {sorted(acked - seen)}"
    assert len(acked) == 41

    # 6. The materializer (same server) rode out both outages: `events` holds every event
    #    Kafka holds, each once, a retried duplicate included.
    with srv.client() as admin:
        loaded = _loaded_ids(admin, until=seen)
    assert sorted(loaded) == sorted(seen)


def _loaded_ids(http: httpx.Client, until: set[str], timeout: float = 120) -> list[str]:
    """The event ids in `events` (one per row), once they cover ``until`` or at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        r = http.post(
            "/v1/sql", json={"query": f"SELECT event_id FROM events WHERE subject = '{SUBJECT}'"}
        )
        assert r.status_code == 200, r.text
        ids = [row[0] for row in r.json()["rows"]]
        if set(ids) >= until or time.monotonic() > deadline:
            return ids
        time.sleep(0.5)


def _all_event_ids(bootstrap: str, topic: str) -> set[str]:
    """Every ce_id on ``topic`` (reads until the high watermarks)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"outage-{time.time_ns()}",
            "enable.auto.commit": False,
        }
    )
    try:
        md = consumer.list_topics(topic, timeout=30)
        partitions = list(md.topics[topic].partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in partitions
        }
    finally:
        consumer.close()
    total = sum(ends.values())
    return {dict(m.headers())["ce_id"].decode() for m in consume(bootstrap, topic, total)}
