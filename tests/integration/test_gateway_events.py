"""Posting events through a real `sluicegate serve` into the real broker, and reading them
back with confluent-kafka's own deserializers pointed at our registry."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import orjson
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from support.gateway_helpers import CLICK_AVRO, ORDER_SCHEMA, consume, create_token, register

from sluicegate.envelope import iso_to_ms
from sluicegate.naming import REJECTED_TOPIC, topic_for_subject

if TYPE_CHECKING:
    from tests.conftest import Server
    from tests.integration.conftest import Stack


@pytest.fixture
def clients(server: Server) -> Iterator[Clients]:
    """HTTP clients on the server (admin, or a token), all closed after the test."""
    with contextlib.ExitStack() as stack:
        yield Clients(server, stack)


class Clients:
    def __init__(self, server: Server, stack: contextlib.ExitStack) -> None:
        self._server, self._stack = server, stack

    def http(self, token: str | None = None) -> httpx.Client:
        return self._stack.enter_context(self._server.client(token))

    def registry(self) -> SchemaRegistryClient:
        conf = {
            "url": self._server.url,
            "basic.auth.user.info": f"admin:{self._server.admin_token}",
        }
        return self._stack.enter_context(SchemaRegistryClient(conf))


def _order(i: int, **extra: object) -> dict[str, object]:
    return {"order_id": f"o-{i}", "ts": f"2026-03-01T10:00:{i:02d}.500Z", "amount": i, **extra}


def test_json_events_single_and_batches_roundtrip(
    clients: Clients, stack: Stack, unique: str
) -> None:
    subject = f"shop{unique}.order"
    topic = topic_for_subject(subject)
    admin = clients.http()
    schema_id = register(
        admin, subject, ORDER_SCHEMA, "JSON", owner="shop", entity_key=["order_id"], event_time="ts"
    )
    shop = clients.http(create_token(admin, "shop"))

    r = shop.post(f"/v1/events/{subject}", json=_order(0), headers={"Idempotency-Key": "evt-0"})
    assert r.status_code == 202, r.text
    single = r.json()
    assert single["event_id"] == "evt-0"
    assert (single["subject"], single["version"], single["schema_id"], single["topic"]) == (
        subject,
        1,
        schema_id,
        topic,
    )

    r = shop.post(f"/v1/events/{subject}/batch", json=[_order(1), _order(2), {"order_id": 3}])
    assert r.status_code == 207, r.text
    batch = r.json()
    assert (batch["accepted"], batch["rejected"]) == (2, 1)
    bad = batch["results"][2]
    assert (bad["index"], bad["status"]) == (2, 422)
    assert {(v["path"], v["rule"]) for v in bad["violations"]} >= {
        ("$.order_id", "type"),
        ("$", "required"),
        ("$.ts", "event_time"),
    }

    ndjson = b"\n".join(orjson.dumps(_order(i)) for i in (3, 4)) + b"\n"
    r = shop.post(
        f"/v1/events/{subject}/batch",
        content=ndjson,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 202, r.text
    accepted = [single] + [x for x in batch["results"] if x["status"] == 202] + r.json()["results"]

    records = consume(stack.kafka_bootstrap, topic, 5)
    deserialize = JSONDeserializer(None, schema_registry_client=clients.registry())
    by_id = {dict(m.headers())["ce_id"].decode(): m for m in records}
    assert set(by_id) == {a["event_id"] for a in accepted}
    for answer in accepted:
        msg = by_id[answer["event_id"]]
        assert (msg.partition(), msg.offset()) == (answer["partition"], answer["offset"])
        payload = deserialize(msg.value(), SerializationContext(topic, MessageField.VALUE))
        assert msg.key() == payload["order_id"].encode()
        headers = {k: v.decode() for k, v in msg.headers()}
        assert headers["ce_specversion"] == "1.0"
        assert headers["ce_type"] == subject
        assert headers["ce_producer"] == "shop"
        assert headers["ce_schemaversion"] == "1"
        assert headers["ce_sourcekind"] == "http"
        assert iso_to_ms(headers["ce_time"]) == iso_to_ms(payload["ts"])
        assert iso_to_ms(headers["ce_ingestedat"]) >= iso_to_ms(headers["ce_time"])
        assert int.from_bytes(msg.value()[1:5], "big") == schema_id


def test_mixed_batch_with_avro_and_json_subjects(
    clients: Clients, stack: Stack, unique: str
) -> None:
    orders, clicks = f"shop{unique}.order", f"web{unique}.click"
    admin = clients.http()
    register(
        admin, orders, ORDER_SCHEMA, "JSON", owner="shop", entity_key=["order_id"], event_time="ts"
    )
    register(admin, clicks, CLICK_AVRO, "AVRO", owner="web", entity_key=["user"], event_time="at")
    token = create_token(admin, "web", subjects=f"shop{unique}.*")
    web = clients.http(token)
    items = [
        {"subject": clicks, "event": {"user": "u1", "at": "2026-03-01T00:00:00.123Z"}},
        {"subject": orders, "event": _order(7), "event_id": "order-7"},
        {"subject": clicks, "event": {"user": "u2", "at": 1772323200456, "page": "/home"}},
        {"subject": clicks, "event": {"user": 5, "at": "later", "extra": 1}},
        {"subject": f"nobody{unique}.x", "event": {}},
    ]
    r = web.post("/v1/events", json=items)
    assert r.status_code == 207, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == [202, 202, 202, 422, 404]
    assert results[1]["event_id"] == "order-7"
    assert {(v["path"], v["rule"]) for v in results[3]["violations"]} == {
        ("$.user", "type"),
        ("$.at", "timestamp-millis"),
        ("$.extra", "unknown_field"),
    }

    records = consume(stack.kafka_bootstrap, topic_for_subject(clicks), 2)
    deserialize = AvroDeserializer(clients.registry())
    decoded = {
        m.key().decode(): deserialize(
            m.value(), SerializationContext(m.topic(), MessageField.VALUE)
        )
        for m in records
    }
    assert decoded["u1"]["page"] is None
    assert decoded["u2"]["page"] == "/home"
    assert int(decoded["u2"]["at"].timestamp() * 1000) == 1772323200456
    times = {m.key().decode(): dict(m.headers())["ce_time"] for m in records}
    assert times == {"u1": b"2026-03-01T00:00:00.123Z", "u2": b"2026-03-01T00:00:00.456Z"}
    (order,) = consume(stack.kafka_bootstrap, topic_for_subject(orders), 1)
    assert dict(order.headers())["ce_id"] == b"order-7"
    assert dict(order.headers())["ce_producer"] == b"web"


def test_atomic_batch_is_all_or_nothing(clients: Clients, stack: Stack, unique: str) -> None:
    subject = f"shop{unique}.order"
    admin = clients.http()
    register(
        admin, subject, ORDER_SCHEMA, "JSON", owner="shop", entity_key=["order_id"], event_time="ts"
    )
    r = admin.post(f"/v1/events/{subject}/batch?atomic=true", json=[_order(1), {"order_id": "x"}])
    assert r.status_code == 422, r.text
    assert {v["index"] for v in r.json()["violations"]} == {1}
    r = admin.post(f"/v1/events/{subject}/batch?atomic=true", json=[_order(1), _order(2)])
    assert r.status_code == 202, r.text
    keys = {m.key() for m in consume(stack.kafka_bootstrap, topic_for_subject(subject), 2)}
    assert keys == {b"o-1", b"o-2"}


def test_rejections_are_counted_dead_lettered_and_listed(
    clients: Clients, stack: Stack, unique: str
) -> None:
    subject = f"shop{unique}.order"
    admin = clients.http()
    register(
        admin, subject, ORDER_SCHEMA, "JSON", owner="shop", entity_key=["order_id"], event_time="ts"
    )
    shop = clients.http(create_token(admin, "shop"))
    other = clients.http(create_token(admin, "other"))
    r = shop.post(f"/v1/events/{subject}", json={"order_id": "o", "ts": "nope", "amount": -1})
    assert r.status_code == 422
    violations = r.json()["violations"]
    r = shop.post(
        f"/v1/events/{subject}", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400

    listed = shop.get(f"/v1/rejections/{subject}")
    assert listed.status_code == 200, listed.text
    recent = listed.json()["rejections"]
    assert [x["reason"] for x in recent] == ["malformed", "schema"]
    assert recent[1]["violations"] == violations
    assert other.get(f"/v1/rejections/{subject}").status_code == 403

    dead = [
        orjson.loads(m.value())
        for m in consume(stack.kafka_bootstrap, REJECTED_TOPIC, 2, key=subject.encode())
    ]
    assert sorted(d["reason"] for d in dead) == ["malformed", "schema"]
    schema_dead = next(d for d in dead if d["reason"] == "schema")
    assert schema_dead["violations"] == violations
    assert schema_dead["producer"] == "shop"
    assert orjson.loads(schema_dead["event"]) == {"order_id": "o", "ts": "nope", "amount": -1}
    assert next(d for d in dead if d["reason"] == "malformed")["event"] == "{not json"
    metrics = clients.http().get("/metrics").text
    for reason in ("schema", "malformed"):
        line = (
            f'sluicegate_gateway_events_rejected_total{{reason="{reason}",subject="{subject}"}} 1.0'
        )
        assert line in metrics
