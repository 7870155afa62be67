"""The real local stack works end to end: Kafka, Connect + Debezium, PostgreSQL, chDB."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
from confluent_kafka import Consumer, Producer


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 1000,  # find topics created after subscribe
            "log_level": 0,
        }
    )


def test_kafka_record_produced_is_consumed_back(stack, unique: str) -> None:
    topic = f"test.stack.{unique}"
    producer = Producer(
        {"bootstrap.servers": stack.kafka_bootstrap, "acks": "all", "enable.idempotence": True}
    )
    reports: list[tuple[str | None, int]] = []
    producer.produce(
        topic,
        key=b"k1",
        value=b"hello " + unique.encode(),
        on_delivery=lambda err, msg: reports.append((err and str(err), msg.offset())),
    )
    assert producer.flush(30) == 0
    assert reports and reports[0][0] is None

    consumer = _consumer(stack.kafka_bootstrap, f"g-{unique}")
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        msg = None
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                break
        assert msg is not None and msg.error() is None
        assert (msg.key(), msg.value()) == (b"k1", b"hello " + unique.encode())
        assert msg.offset() == reports[0][1]
    finally:
        consumer.close()


def _wait_running(connect_url: str, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{connect_url}/connectors/{name}/status", timeout=10)
        if r.status_code == 200:
            st = r.json()
            states = [st["connector"]["state"]] + [t["state"] for t in st.get("tasks", [])]
            assert "FAILED" not in states, st
            if len(states) > 1 and set(states) == {"RUNNING"}:
                return
        assert time.monotonic() < deadline, r.text
        time.sleep(0.5)


def _next_change(consumer: Consumer, topic: str | None = None, key: dict | None = None) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error() or not msg.value():
            continue
        if topic is not None:
            assert msg.topic() == topic
        if key is not None:
            assert json.loads(msg.key()) == key
        return json.loads(msg.value())
    raise AssertionError("no change event within 60 s")


def test_debezium_turns_an_insert_into_a_change_event(stack, unique: str) -> None:
    table = f"stack_{unique}"
    name = f"stack-{unique}"
    with psycopg.connect(stack.pg_dsn, autocommit=True) as pg:
        pg.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, sku text NOT NULL, qty int)")
        pg.execute(f"INSERT INTO {table} VALUES (0, 'before', 1)")
    config = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": stack.pg_host,
        "database.port": str(stack.pg_port),
        "database.user": stack.pg_user,
        "database.password": stack.pg_password,
        "database.dbname": stack.pg_db,
        "topic.prefix": f"raw{unique}",
        "table.include.list": f"public.{table}",
        "slot.name": f"slot_{unique}",
        "publication.name": f"pub_{unique}",
        "publication.autocreate.mode": "filtered",
        "snapshot.mode": "initial",
    }
    try:
        r = httpx.put(f"{stack.connect_url}/connectors/{name}/config", json=config, timeout=30)
        assert r.status_code == 201, r.text
        _wait_running(stack.connect_url, name)
        consumer = _consumer(stack.kafka_bootstrap, f"g-{unique}")
        consumer.subscribe([f"^raw{unique}\\..*"])
        topic = f"raw{unique}.public.{table}"
        # the snapshot row proves the slot exists, so the INSERT after it is streamed
        snapshot = _next_change(consumer)
        assert snapshot["op"] == "r" and snapshot["after"]["sku"] == "before"
        with psycopg.connect(stack.pg_dsn, autocommit=True) as pg:
            pg.execute(f"INSERT INTO {table} VALUES (1, 'abc', 3)")
        event = _next_change(consumer, topic=topic, key={"id": 1})
        consumer.close()
        assert event["op"] == "c"
        assert event["after"] == {"id": 1, "sku": "abc", "qty": 3}
        assert event["source"]["table"] == table
    finally:
        httpx.delete(f"{stack.connect_url}/connectors/{name}", timeout=30)
        with psycopg.connect(
            stack.pg_dsn.replace(f"user={stack.pg_user}", "user=postgres"), autocommit=True
        ) as pg:
            for _ in range(30):
                gone = pg.execute(
                    "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s AND active",
                    (f"slot_{unique}",),
                ).fetchone()
                if gone == (0,):
                    break
                time.sleep(0.5)
            pg.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                (f"slot_{unique}",),
            )
            pg.execute(f"DROP TABLE IF EXISTS {table}")


def test_chdb_mergetree_survives_reopening(tmp_path: Path) -> None:
    """Each step runs in a child process: chDB allows one data directory per process."""

    script = """
import sys
from datetime import datetime, timezone
from pathlib import Path
from sluicegate.clickhouse import connect
d = Path(sys.argv[1])
c = connect(None, d)
if sys.argv[2] == "write":
    c.command("CREATE TABLE t (id UInt64, name String, at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY id")
    c.insert("t", [[1, 2, 3], ["a", "b", "c"], [datetime(2026, 1, 1, 0, 0, s, tzinfo=timezone.utc) for s in (0, 1, 2)]], column_names=["id", "name", "at"], column_oriented=True)
c.close()
c = connect(None, d)
print(c.query("SELECT count(), groupArray(name), toString(max(at)) FROM (SELECT * FROM t ORDER BY id)").result_rows[0])
"""
    out1 = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), "write"],
        capture_output=True,
        text=True,
        check=True,
    )
    out2 = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), "read"],
        capture_output=True,
        text=True,
        check=True,
    )
    expected = "(3, ['a', 'b', 'c'], '2026-01-01 00:00:02.000')"
    assert out1.stdout.strip() == expected
    assert out2.stdout.strip() == expected
