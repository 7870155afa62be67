"""Events posted through the gateway land in `events` with their envelope and the payload
upcast to the latest version; poison records land in `dead_letters` and the partition
moves on (to CDC-shaped records that keep their source and op); a re-sent event is one
row; the CLI and /metrics show what was loaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer
from support.mz_support import (
    delete_topics,
    encode,
    envelope,
    produce,
    producer,
    register,
    sql,
    wait_for,
)
from support.serving import start_server

from sluicegate.envelope import CdcOp, Source, iso_to_ms
from sluicegate.naming import REJECTED_TOPIC, governed_topic_subscription, topic_for_subject

CLICK_V1 = {
    "type": "record",
    "name": "Click",
    "fields": [
        {"name": "user", "type": "string"},
        {"name": "ts", "type": "string"},
        {"name": "n", "type": "long"},
    ],
}
CLICK_V2 = {
    "type": "record",
    "name": "Click",
    "fields": [*CLICK_V1["fields"], {"name": "weight", "type": "int", "default": 1}],
}


@pytest.fixture
def srv(tmp_path: Path, stack: Any, unique: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A server loading only this test's subjects (mz.<name><unique>, created later and
    found by the pattern subscription): the shared broker holds other tests' backlogs."""
    start = start_server
    server = start(
        tmp_path / "sg",
        {
            "SLUICEGATE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "SLUICEGATE_MATERIALIZE_TOPICS": rf"^sg\.mz\.[a-z]+{unique}$",
        },
    )
    yield server
    server.stop()


def test_default_subscription_finds_new_governed_topics_but_not_rejections(
    stack: Any, unique: str
) -> None:
    """librdkafka evaluates the default pattern: a governed topic created after subscribing
    is assigned within seconds; sg.rejected never is."""
    bootstrap: str = stack.kafka_bootstrap
    subject = f"mz.pattern{unique}"
    seen: set[str] = set()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"mz-pattern-{unique}",
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    try:
        consumer.subscribe(
            [governed_topic_subscription()],
            on_assign=lambda _, tps: seen.update(tp.topic for tp in tps),
        )
        p = producer(bootstrap)
        p.produce(REJECTED_TOPIC, b"{}")
        p.produce(topic_for_subject(subject), b"x")
        assert p.flush(30) == 0

        def assigned() -> bool:
            consumer.poll(0.2)
            return topic_for_subject(subject) in seen

        wait_for(assigned, timeout=30, what="the new topic to be assigned")
        assert REJECTED_TOPIC not in seen
    finally:
        consumer.close()
        delete_topics(bootstrap, subject)


def test_gateway_events_land_once_with_envelope_and_upcast_payload(
    srv: Any, stack: Any, unique: str
) -> None:
    bootstrap: str = stack.kafka_bootstrap
    subject = f"mz.click{unique}"
    with srv.client() as http:
        _check_gateway_events(srv, http, bootstrap, subject, unique)


def _check_gateway_events(srv: Any, http: Any, bootstrap: str, subject: str, unique: str) -> None:
    try:
        meta = {"owner": "admin", "entity_key": ["user"], "event_time": "ts"}
        register(http, subject, CLICK_V1, "AVRO", meta)
        v1 = [{"user": f"u{i}", "ts": f"2024-03-0{i + 1}T10:00:00.250Z", "n": i} for i in range(3)]
        r = http.post(f"/v1/events/{subject}/batch", json=v1)
        assert r.status_code == 202, r.text
        register(http, subject, CLICK_V2, "AVRO")
        v2 = [{"user": "u9", "ts": "2024-04-01T00:00:00Z", "n": 9, "weight": 5}]
        r = http.post(f"/v1/events/{subject}", json=v2[0], headers={"Idempotency-Key": unique})
        assert r.status_code == 202, r.text

        rows = wait_for(
            lambda: (
                (
                    got := sql(
                        http,
                        "SELECT entity_key, occurred_at, source, producer, op, "
                        f"schema_version, payload_version, payload, kafka_topic, event_id "
                        f"FROM events WHERE subject = '{subject}' ORDER BY entity_key",
                    )
                )
                and len(got) == 4
                and got
            ),
            what="4 events loaded",
        )
        by_user = {row[0]: row for row in rows}
        for event in v1:
            row = by_user[event["user"]]
            assert iso_to_ms(row[1]) == iso_to_ms(event["ts"])
            assert row[2:7] == ["http", "admin", "", 1, 2]
            assert orjson.loads(row[7]) == {**event, "weight": 1}  # v1 read as v2
            assert row[8] == topic_for_subject(subject)
        assert by_user["u9"][5:7] == [2, 2] and orjson.loads(by_user["u9"][7]) == v2[0]
        assert by_user["u9"][9] == unique  # the Idempotency-Key is the event id

        # The same event sent again (a producer retry): still one row for every query.
        schema_id = http.get(f"/subjects/{subject}/versions/2").json()["id"]
        again = envelope(subject, schema_id, 2, unique, "u9", iso_to_ms(v2[0]["ts"]), v2[0])
        p = producer(bootstrap)
        produce(p, [again], lambda e: encode(CLICK_V2, "AVRO", e.payload or {}))
        marker = envelope(subject, schema_id, 2, f"{unique}-m", "u9", iso_to_ms(v2[0]["ts"]), v2[0])
        produce(p, [marker], lambda e: encode(CLICK_V2, "AVRO", e.payload or {}))
        wait_for(
            lambda: sql(http, f"SELECT count() FROM events WHERE event_id = '{unique}-m'") == [[1]],
            what="the marker event",
        )
        assert sql(http, f"SELECT count() FROM events WHERE event_id = '{unique}'") == [[1]]

        # The CLI asks the running server.
        out = srv.cli("events").stdout
        assert subject in out
        line = next(ln for ln in out.splitlines() if ln.startswith(subject))
        assert line.split()[1] == "5"
        out = srv.cli(
            "sql",
            f"SELECT count() AS n FROM events WHERE subject = '{subject}'",
            "--format",
            "json",
        ).stdout
        assert orjson.loads(out) == {"n": 5}
        assert unique in srv.cli("events", "tail", "--subject", subject, "-n", "3").stdout
        denied = srv.cli("sql", "DROP TABLE events", check=False)
        assert denied.returncode == 1 and "read-only" in denied.stderr

        metrics = http.get("/metrics").text
        assert f'sluicegate_materializer_rows_total{{subject="{subject}"}}' in metrics
    finally:
        delete_topics(bootstrap, subject)


def test_poison_record_goes_to_dead_letters_and_later_cdc_events_load(
    srv: Any, stack: Any, unique: str
) -> None:
    bootstrap: str = stack.kafka_bootstrap
    subject = f"mz.poison{unique}"
    with srv.client() as http:
        _check_poison(http, bootstrap, subject, unique)


def _check_poison(http: Any, bootstrap: str, subject: str, unique: str) -> None:
    schema = {"type": "object", "properties": {"user": {"type": "string"}}, "required": ["user"]}
    try:
        schema_id, version = register(http, subject, schema, "JSON")
        p = producer(bootstrap)
        where: list[tuple[int, int]] = []
        p.produce(
            topic_for_subject(subject),
            key=b"k1",
            value=b"\x07garbage",
            partition=0,
            on_delivery=lambda err, msg: where.append((msg.partition(), msg.offset())),
        )
        assert p.flush(30) == 0
        # The records after it are CDC-shaped (source cdc, op, position), as the bridge sends.
        good = [
            envelope(
                subject,
                schema_id,
                version,
                f"{unique}-{i}",
                "k1",
                1_700_000_000_000 + i,
                {"user": "k1"},
            )
            for i in range(3)
        ]
        for env, op in zip(good, (CdcOp.READ, CdcOp.UPDATE, CdcOp.DELETE), strict=True):
            env.source, env.op, env.position = Source.CDC, op, {"lsn": "0/16B3748", "txid": "7"}
        produce(p, good, lambda e: orjson.dumps(e.payload))

        loaded = wait_for(
            lambda: (
                (
                    rows := sql(
                        http,
                        "SELECT source, op, entity_key FROM events "
                        f"WHERE subject = '{subject}' ORDER BY occurred_at",
                    )
                )
                and len(rows) == 3
                and rows
            ),
            what="the events after the poison record",
        )
        assert loaded == [["cdc", "r", "k1"], ["cdc", "u", "k1"], ["cdc", "d", "k1"]]
        dead = wait_for(  # a load inserts its dead letters after its events
            lambda: sql(
                http,
                "SELECT partition, offset, key, value, error FROM dead_letters "
                f"WHERE topic = '{topic_for_subject(subject)}'",
            ),
            what="the dead letter",
        )
        assert len(dead) == 1
        partition, offset, key, value, error = dead[0]
        assert (partition, offset) == where[0]
        assert key == "k1" and "garbage" in value
        assert "wire format" in error
        assert "sluicegate_materializer_dead_letters_total" in http.get("/metrics").text
    finally:
        delete_topics(bootstrap, subject)
