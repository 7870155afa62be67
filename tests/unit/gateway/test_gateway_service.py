"""The ingest pipeline without HTTP: envelope, key, event time, per-item outcomes,
atomic batches, rejections (counted, dead-lettered, kept) and Kafka failures."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from gateway_fixtures import FakeSink

from gateway import Gateway, Incoming, batch_event_id
from registry import Principal, Registry
from sluicegate.envelope import Envelope, iso_to_ms, unframe
from sluicegate.errors import EventRejected, Forbidden, SubjectNotFound, VersionNotFound
from sluicegate.naming import REJECTED_TOPIC

SHOP = Principal("shop")
ORDER = {"order_id": "o-1", "ts": "2026-01-02T03:04:05.678Z", "amount": 9.5}


def ingest(gw: Gateway, items: list[Incoming], who: Principal = SHOP, atomic: bool = False) -> Any:
    return asyncio.run(gw.ingest(items, who, atomic=atomic))


def test_accepted_event_is_framed_keyed_and_carries_the_envelope(
    gateway: Gateway, sink: FakeSink, registry: Registry
) -> None:
    (outcome,) = ingest(gateway, [Incoming(0, "shop.order", None, ORDER)])
    assert outcome.status == 202
    assert outcome.body["topic"] == "sg.shop.order"
    (record,) = sink.produced
    assert record.topic == "sg.shop.order"
    assert record.key == b"o-1"
    schema_id, body = unframe(record.value)
    schema = registry.schema_by_id(schema_id)
    assert schema.decode(body) == ORDER
    env = Envelope.from_record(record.key, record.headers, schema_id, ORDER)
    assert env.event_id == outcome.body["event_id"]
    assert env.subject == "shop.order"
    assert env.schema_version == 1
    assert env.occurred_at == iso_to_ms(ORDER["ts"])
    assert env.producer == "shop"
    assert env.source.value == "http"
    assert env.ingested_at >= env.occurred_at


def test_event_id_from_idempotency_key_or_event_field(gateway: Gateway, sink: FakeSink) -> None:
    ingest(gateway, [Incoming(0, "shop.order", None, ORDER, event_id="key-1")])
    headers = dict(sink.produced[-1].headers)
    assert headers["ce_id"] == b"key-1"
    assert batch_event_id("k", 1) == batch_event_id("k", 1) != batch_event_id("k", 2)


def test_avro_subject_takes_json_and_epoch_millis(
    gateway: Gateway, sink: FakeSink, registry: Registry
) -> None:
    event = {"user": "u9", "at": 1767225600123}
    (outcome,) = ingest(gateway, [Incoming(0, "web.click", None, event)], Principal("web"))
    assert outcome.status == 202, outcome.body
    record = sink.produced[-1]
    schema_id, body = unframe(record.value)
    decoded = registry.schema_by_id(schema_id).decode(body)
    assert decoded["user"] == "u9"
    assert record.key == b"u9"
    assert dict(record.headers)["ce_time"] == b"2026-01-01T00:00:00.123Z"


def test_invalid_event_lists_every_violation_and_is_dead_lettered(
    gateway: Gateway, sink: FakeSink
) -> None:
    bad = {"amount": -3, "ts": "not a time"}
    (outcome,) = ingest(gateway, [Incoming(0, "shop.order", None, bad)])
    assert outcome.status == 422
    assert isinstance(outcome.error, EventRejected)
    rules = {(v["path"], v["rule"]) for v in outcome.body["violations"]}
    assert {
        ("$", "required"),
        ("$.amount", "minimum"),
        ("$.ts", "format"),
        ("$.order_id", "entity_key"),
    } <= rules
    assert ("$.ts", "event_time") not in rules  # the schema's own format violation says it
    assert sink.produced == []
    (dead,) = sink.dead_letters
    assert dead.topic == REJECTED_TOPIC
    doc = orjson.loads(dead.value)
    assert doc["subject"] == "shop.order"
    assert doc["reason"] == "schema"
    assert orjson.loads(doc["event"]) == bad
    assert doc["producer"] == "shop"
    assert gateway.rejections.recent("shop.order")[0]["violations"] == outcome.body["violations"]


def test_event_time_out_of_range_and_non_object(gateway: Gateway) -> None:
    far = {**ORDER, "ts": "9999-01-01T00:00:00Z"}
    first, second = ingest(
        gateway, [Incoming(0, "shop.order", None, far), Incoming(1, "shop.order", None, [1, 2])]
    )
    assert [v["rule"] for v in first.body["violations"]] == ["event_time"]
    assert second.status == 422
    assert second.body["violations"][0]["path"] == "$"


def test_batch_outcomes_in_order_with_unknown_and_forbidden_subjects(gateway: Gateway) -> None:
    items = [
        Incoming(0, "shop.order", None, ORDER),
        Incoming(1, "no.such.subject", None, {}),
        Incoming(2, "web.click", None, {"user": "u", "at": 1}),
        Incoming(3, "shop.order", 7, ORDER),
        Incoming(4, "shop.order", None, {"order_id": "x"}),
    ]
    outcomes = ingest(gateway, items)
    assert [o.status for o in outcomes] == [202, 404, 403, 404, 422]
    assert isinstance(outcomes[1].error, SubjectNotFound)
    assert isinstance(outcomes[2].error, Forbidden)
    assert isinstance(outcomes[3].error, VersionNotFound)


def test_granted_token_may_produce_to_another_teams_subject(gateway: Gateway) -> None:
    granted = Principal("analytics", subjects="web.*")
    (outcome,) = ingest(gateway, [Incoming(0, "web.click", None, {"user": "u", "at": 1})], granted)
    assert outcome.status == 202


def test_atomic_batch_produces_nothing_when_one_event_is_invalid(
    gateway: Gateway, sink: FakeSink
) -> None:
    items = [Incoming(0, "shop.order", None, ORDER), Incoming(1, "shop.order", None, {"x": 1})]
    with pytest.raises(EventRejected) as info:
        ingest(gateway, items, atomic=True)
    assert sink.produced == []
    assert {v["index"] for v in info.value.details["violations"]} == {1}


def test_kafka_failure_is_never_reported_accepted(gateway: Gateway, sink: FakeSink) -> None:
    sink.fail = {1}
    items = [Incoming(i, "shop.order", None, {**ORDER, "order_id": f"o{i}"}) for i in range(3)]
    outcomes = ingest(gateway, items)
    assert [o.status for o in outcomes] == [202, 503, 202]
    assert outcomes[1].body["event_id"]
    err = gateway.unavailable(outcomes)
    assert err.status == 503
    assert err.retry_after >= 1
    assert [r["status"] for r in err.details["results"]] == [202, 503, 202]


def test_record_refused_by_kafka_is_a_413(gateway: Gateway, sink: FakeSink) -> None:
    sink.fail, sink.permanent = {0}, True
    (outcome,) = ingest(gateway, [Incoming(0, "shop.order", None, ORDER)])
    assert outcome.status == 413


def test_rejection_keeps_a_bounded_copy_of_huge_events(gateway: Gateway, sink: FakeSink) -> None:
    huge = {"order_id": "o", "ts": "2026-01-01T00:00:00Z", "amount": 1, "note": "x" * 100_000}
    (outcome,) = ingest(gateway, [Incoming(0, "shop.order", None, huge)])
    assert outcome.status == 422
    kept = gateway.rejections.recent("shop.order", 1)[0]
    assert kept["event_truncated"] is True
    assert len(kept["event"]) <= 4096
    dead = orjson.loads(sink.dead_letters[-1].value)
    assert orjson.loads(dead["event"]) == huge
    assert dead["event_truncated"] is False
