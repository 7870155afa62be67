"""Helpers of the materializer's integration tests: register schemas over the registry's
HTTP API, produce governed records straight to Kafka in the wire format, query the store
through /v1/sql."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import fastavro
import httpx
import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from sluicegate.envelope import Envelope, Source, frame, now_ms
from sluicegate.naming import topic_for_subject


def register(
    http: httpx.Client,
    subject: str,
    schema: dict[str, Any],
    schema_type: str,
    metadata: dict[str, Any] | None = None,
) -> tuple[int, int]:
    """Register a version over Sluicegate's registry API; returns (schema id, version)."""
    body: dict[str, Any] = {"schema": orjson.dumps(schema).decode(), "schemaType": schema_type}
    if metadata:
        body["metadata"] = metadata
    r = http.post(f"/v1/subjects/{subject}/versions", json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()["id"], r.json()["version"]


def encode(schema: dict[str, Any], schema_type: str, payload: dict[str, Any]) -> bytes:
    if schema_type == "JSON":
        return orjson.dumps(payload)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), payload)
    return buf.getvalue()


def envelope(
    subject: str,
    schema_id: int,
    version: int,
    event_id: str,
    key: str,
    occurred_ms: int,
    payload: dict[str, Any],
) -> Envelope:
    return Envelope(
        event_id=event_id,
        subject=subject,
        schema_id=schema_id,
        schema_version=version,
        entity_key=key,
        occurred_at=occurred_ms,
        ingested_at=now_ms(),
        source=Source.HTTP,
        producer="tests",
        payload=payload,
    )


def producer(bootstrap: str) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 20,
            "batch.num.messages": 10_000,
        }
    )


def produce(
    p: Producer,
    envelopes: Iterable[Envelope],
    body: Callable[[Envelope], bytes],
    delivered: list[tuple[int, int]] | None = None,
) -> None:
    """Produce each envelope as the gateway does (key, framed value, CloudEvents headers)."""

    def on_delivery(err: Any, msg: Any) -> None:
        assert err is None, err
        if delivered is not None:
            delivered.append((msg.partition(), msg.offset()))

    for env in envelopes:
        while True:
            try:
                p.produce(
                    topic_for_subject(env.subject),
                    key=env.entity_key.encode(),
                    value=frame(env.schema_id, body(env)),
                    headers=env.headers(),
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(60) == 0


def sql(http: httpx.Client, query: str) -> list[list[Any]]:
    r = http.post("/v1/sql", json={"query": query})
    assert r.status_code == 200, r.text
    return r.json()["rows"]


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def committed(bootstrap: str, group: str, topic: str) -> int:
    """Sum over the topic's partitions of the group's committed offsets."""
    partitions = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [TopicPartition(topic, p) for p in partitions.topics[topic].partitions]
        return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
    finally:
        consumer.close()


def delete_topics(bootstrap: str, *subjects: str) -> None:
    """Remove a test's topics so other stores on the shared broker do not load them."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.delete_topics([topic_for_subject(s) for s in subjects], operation_timeout=30)
    for future in futures.values():
        with contextlib.suppress(Exception):  # already gone is fine
            future.result()


HERE = Path(__file__).resolve().parent


class Harness:
    """tests/support/mz_harness.py in its own process."""

    def __init__(self, data_dir: Path, bootstrap: str) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = data_dir / "harness.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "mz_harness.py"), str(data_dir), bootstrap],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
                cwd=HERE,
            )
        assert self._read() == {"ok": True}

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"harness exited:\n{self.log.read_text()[-3000:]}")
        return orjson.loads(line)

    def __call__(self, op: str, **args: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps({"op": op, **args}) + b"\n")
        self.proc.stdin.flush()
        reply = self._read()
        if not reply["ok"]:
            raise RuntimeError(reply["error"])
        return reply["result"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self("stop")
                self.proc.wait(30)
            except Exception:
                self.proc.kill()
                self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
