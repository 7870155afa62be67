"""Helpers of the gateway's integration tests: register subjects through the real HTTP API,
create team tokens, and read governed topics back with confluent-kafka."""

from __future__ import annotations

import time
from typing import Any

import httpx
from confluent_kafka import Consumer, Message

ORDER_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "ts": {"type": "string", "format": "date-time"},
        "amount": {"type": "number", "minimum": 0},
        "note": {"type": "string"},
    },
    "required": ["order_id", "ts", "amount"],
    "additionalProperties": False,
}

CLICK_AVRO: dict[str, Any] = {
    "type": "record",
    "name": "Click",
    "namespace": "web",
    "fields": [
        {"name": "user", "type": "string"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "page", "type": ["null", "string"], "default": None},
    ],
}


def register(
    http: httpx.Client,
    subject: str,
    schema: dict[str, Any],
    schema_type: str,
    *,
    owner: str,
    entity_key: list[str],
    event_time: str | None,
) -> int:
    """Register ``schema`` with its metadata; returns the global schema id."""
    metadata: dict[str, Any] = {"owner": owner, "entity_key": entity_key}
    if event_time:
        metadata["event_time"] = event_time
    r = http.post(
        f"/v1/subjects/{subject}/versions",
        json={"schema": schema, "schemaType": schema_type, "metadata": metadata},
    )
    assert r.status_code in (200, 201), r.text
    return int(r.json()["id"])


def create_token(http: httpx.Client, team: str, subjects: str | None = None) -> str:
    r = http.post("/v1/tokens", json={"team": team, "subjects": subjects, "admin": False})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def consume(
    bootstrap: str, topic: str, count: int, timeout: float = 60.0, key: bytes | None = None
) -> list[Message]:
    """Exactly ``count`` records of ``topic`` (with ``key``, if given), read from the start;
    fails if fewer arrive or more are there."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{topic}-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error() and key in (None, msg.key()):
                out.append(msg)
        extra_until = time.monotonic() + 1.0  # anything beyond ``count`` would be a duplicate
        while time.monotonic() < extra_until:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error() and key in (None, msg.key()):
                out.append(msg)
    finally:
        consumer.close()
    assert len(out) == count, f"expected {count} records on {topic}, got {len(out)}"
    return out
