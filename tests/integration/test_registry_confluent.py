"""The registry driven by confluent-kafka's own SchemaRegistryClient, serializers and
deserializers against a real `sluicegate serve`, and records through the real broker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from support.serving import Server

Stack = Any  # tests/integration/conftest.py Stack

AVRO_V1 = json.dumps(
    {
        "type": "record",
        "name": "Upvote",
        "namespace": "reddit",
        "fields": [{"name": "user_id", "type": "string"}, {"name": "post_id", "type": "long"}],
    }
)
AVRO_V2 = json.dumps(
    {
        "type": "record",
        "name": "Upvote",
        "namespace": "reddit",
        "fields": [
            {"name": "user_id", "type": "string"},
            {"name": "post_id", "type": "long"},
            {"name": "weight", "type": "double", "default": 1.0},
        ],
    }
)
AVRO_BAD = json.dumps(
    {
        "type": "record",
        "name": "Upvote",
        "namespace": "reddit",
        "fields": [
            {"name": "user_id", "type": "int"},
            {"name": "post_id", "type": "long"},
            {"name": "karma", "type": "int"},
        ],
    }
)
JSON_V1 = json.dumps(
    {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Click",
        "type": "object",
        "properties": {"user_id": {"type": "string"}, "x": {"type": "integer"}},
        "required": ["user_id"],
    }
)


_OPEN: list[SchemaRegistryClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def client(server: Server, team: str = "admin", token: str | None = None) -> SchemaRegistryClient:
    """A fresh client (no shared cache), closed after the test."""
    sr = SchemaRegistryClient(
        {
            "url": server.url,
            "basic.auth.user.info": f"{team}:{token or server.admin_token}",
        }
    )
    _OPEN.append(sr)
    return sr


def test_avro_register_lookup_latest_compat_config_delete(server: Server, unique: str) -> None:
    sr = client(server)
    subject = f"reg-{unique}-value"
    sid = sr.register_schema(subject, Schema(AVRO_V1, "AVRO"))
    # identical re-registration (different whitespace and key order) returns the same id
    reordered = json.dumps(json.loads(AVRO_V1), indent=4, sort_keys=True)
    assert client(server).register_schema(subject, Schema(reordered, "AVRO")) == sid
    found = sr.lookup_schema(subject, Schema(reordered, "AVRO"))
    assert (found.schema_id, found.version) == (sid, 1)
    stored = json.loads(client(server).get_schema(sid).schema_str)
    assert stored["fields"] == json.loads(AVRO_V1)["fields"]
    assert stored["name"] == "reddit.Upvote"

    assert sr.test_compatibility(subject, Schema(AVRO_V2, "AVRO")) is True
    assert sr.test_compatibility(subject, Schema(AVRO_BAD, "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as refused:
        sr.register_schema(subject, Schema(AVRO_BAD, "AVRO"))
    assert refused.value.http_status_code == 409
    assert refused.value.error_code == 40901
    assert "/user_id: TYPE_MISMATCH" in refused.value.error_message
    assert "/karma: READER_FIELD_MISSING_DEFAULT_VALUE" in refused.value.error_message

    sid2 = sr.register_schema(subject, Schema(AVRO_V2, "AVRO"))
    latest = sr.get_latest_version(subject)
    assert (latest.schema_id, latest.version) == (sid2, 2)
    assert sr.get_versions(subject) == [1, 2]
    # the same schema under another subject shares the id
    assert sr.register_schema(f"other-{unique}-value", Schema(AVRO_V1, "AVRO")) == sid

    sr.set_compatibility(subject, "FULL_TRANSITIVE")
    assert sr.get_compatibility(subject) == "FULL_TRANSITIVE"
    assert sr.get_compatibility() == "BACKWARD"

    assert sr.delete_version(subject, 2) == 2
    assert sr.get_versions(subject) == [1]
    assert sr.delete_subject(subject) == [1]
    assert subject not in sr.get_subjects()
    assert sr.delete_subject(subject, permanent=True) == [1, 2]
    # ids of a deleted subject still resolve for old data
    assert json.loads(client(server).get_schema(sid2).schema_str)["fields"][2]["name"] == "weight"
    with pytest.raises(SchemaRegistryError) as gone:
        client(server).get_latest_version(subject)
    assert (gone.value.http_status_code, gone.value.error_code) == (404, 40401)


def _consume_one(stack: Stack, topic: str, unique: str) -> bytes:
    consumer = Consumer(
        {
            "bootstrap.servers": stack.kafka_bootstrap,
            "group.id": f"reg-{unique}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                value = msg.value()
                assert value is not None
                return value
        raise AssertionError(f"nothing consumed from {topic}")
    finally:
        consumer.close()


def _produce(stack: Stack, topic: str, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap})
    producer.produce(topic, value=value)
    assert producer.flush(30) == 0


def test_avro_serializer_through_the_broker(server: Server, stack: Stack, unique: str) -> None:
    topic = f"regtest-avro-{unique}"
    ctx = SerializationContext(topic, MessageField.VALUE)
    value = AvroSerializer(client(server), AVRO_V1)({"user_id": "u1", "post_id": 7}, ctx)
    assert value is not None
    _produce(stack, topic, value)
    raw = _consume_one(stack, topic, unique)
    schema_id = int.from_bytes(raw[1:5], "big")
    assert raw[0] == 0
    assert client(server).get_latest_version(f"{topic}-value").schema_id == schema_id
    decoded = AvroDeserializer(client(server))(raw, ctx)
    assert decoded == {"user_id": "u1", "post_id": 7}


def test_json_serializer_through_the_broker(server: Server, stack: Stack, unique: str) -> None:
    topic = f"regtest-json-{unique}"
    ctx = SerializationContext(topic, MessageField.VALUE)
    serializer = JSONSerializer(JSON_V1, client(server))
    value = serializer({"user_id": "u2", "x": 3}, ctx)
    assert value is not None
    _produce(stack, topic, value)
    raw = _consume_one(stack, topic, unique)
    latest = client(server).get_latest_version(f"{topic}-value")
    assert latest.schema.schema_type == "JSON"
    assert int.from_bytes(raw[1:5], "big") == latest.schema_id
    assert JSONDeserializer(None, schema_registry_client=client(server))(raw, ctx) == {
        "user_id": "u2",
        "x": 3,
    }
    # the serializer validates: a missing required field never reaches Kafka
    with pytest.raises(Exception, match="user_id"):
        serializer({"x": 1}, ctx)


def test_json_compatibility_via_client(server: Server, unique: str) -> None:
    sr = client(server)
    subject = f"json-{unique}"
    sr.register_schema(subject, Schema(JSON_V1, "JSON"))
    narrowed = json.loads(JSON_V1)
    narrowed["properties"]["x"] = {"type": "integer", "minimum": 10}
    narrowed["required"] = ["user_id", "x"]
    with pytest.raises(SchemaRegistryError) as refused:
        sr.register_schema(subject, Schema(json.dumps(narrowed), "JSON"))
    assert refused.value.error_code == 40901
    assert "/x: REQUIRED_ADDED" in refused.value.error_message
    assert "/x: BOUND_TIGHTENED" in refused.value.error_message
    widened = json.loads(JSON_V1)
    widened["properties"]["x"] = {"type": ["integer", "null"]}
    widened["properties"]["note"] = {"type": "string"}
    assert sr.register_schema(subject, Schema(json.dumps(widened), "JSON")) > 0
    assert sr.get_latest_version(subject).version == 2


def test_client_sees_confluent_errors(server: Server, unique: str) -> None:
    owner_token = server.cli("tokens", "create", "--team", "owners").stdout.strip()
    other_token = server.cli("tokens", "create", "--team", "others").stdout.strip()
    subject = f"owned-{unique}-value"
    client(server, "owners", owner_token).register_schema(subject, Schema(AVRO_V1, "AVRO"))
    other = client(server, "others", other_token)
    cases = [
        (lambda: other.register_schema(subject, Schema(AVRO_V2, "AVRO")), 403, 40301),
        (lambda: other.set_compatibility(subject, "NONE"), 403, 40301),
        (lambda: other.delete_subject(subject), 403, 40301),
        (lambda: client(server).set_compatibility(subject, "SOMETIMES"), 422, 42203),
        (
            lambda: client(server).register_schema(subject, Schema('{"type": "recrd"}', "AVRO")),
            422,
            42201,
        ),
        (lambda: client(server).get_version(subject, 42), 404, 40402),
        (lambda: client(server).get_schema(424242), 404, 40403),
        (lambda: client(server, "owners", "sgt_wrong").get_subjects(), 401, 40101),
    ]
    for call, status, code in cases:
        with pytest.raises(SchemaRegistryError) as exc:
            call()
        assert (exc.value.http_status_code, exc.value.error_code) == (status, code)
        assert exc.value.error_message
