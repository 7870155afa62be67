"""`make demo`: a smoke run of the pipeline on the local stack.

Proves each real part answers: a record through Kafka, a PostgreSQL row change captured by
Debezium on Kafka Connect, and rows written to and read back from ClickHouse (chDB).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
from confluent_kafka import Consumer, Producer

from sluicegate.clickhouse import connect
from sluicegate.settings import Settings

PG_DSN = "host=127.0.0.1 port={port} dbname={db} user={user} password={password}"


def _say(step: str, detail: str) -> None:
    print(f"  {step:<10} {detail}", flush=True)


def _wait_for_change(consumer: Consumer, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error() and msg.value():
            return json.loads(msg.value())
    raise TimeoutError("no change event from Debezium within 60 s")


def run(settings: Settings, pg: dict[str, str]) -> None:
    """Run the smoke pipeline against the stack named by ``settings`` and ``pg``."""
    started = time.monotonic()
    run_id = str(int(time.time()))
    print("Sluicegate smoke pipeline")

    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "acks": "all", "enable.idempotence": True}
    )
    producer.produce("demo.smoke", key=run_id.encode(), value=b'{"hello":"kafka"}')
    producer.flush(30)
    _say("kafka", f"produced 1 record to demo.smoke on {settings.kafka_bootstrap}")

    table, name = f"demo_smoke_{run_id}", f"demo-smoke-{run_id}"
    with psycopg.connect(PG_DSN.format(**pg), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, note text)")
        conn.execute(f"INSERT INTO {table} VALUES (1, 'captured by Debezium')")
    config = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "plugin.name": "pgoutput",
        "tasks.max": "1",
        "database.hostname": "127.0.0.1",
        "database.port": pg["port"],
        "database.user": pg["user"],
        "database.password": pg["password"],
        "database.dbname": pg["db"],
        "topic.prefix": f"demo{run_id}",
        "table.include.list": f"public.{table}",
        "slot.name": f"demo_{run_id}",
        "publication.name": f"demo_{run_id}",
        "publication.autocreate.mode": "filtered",
        "slot.drop.on.stop": "true",
    }
    httpx.put(
        f"{settings.connect_url}/connectors/{name}/config", json=config, timeout=30
    ).raise_for_status()
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"demo-{run_id}",
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 1000,
            "log_level": 0,
        }
    )
    consumer.subscribe([f"demo{run_id}.public.{table}"])
    try:
        change = _wait_for_change(consumer)
    finally:
        consumer.close()
        httpx.delete(f"{settings.connect_url}/connectors/{name}", timeout=30)
    _say("cdc", f"Debezium captured op={change['op']} row={change['after']} from PostgreSQL")

    with tempfile.TemporaryDirectory() as tmp:
        client = connect(None, Path(tmp))
        client.command("CREATE TABLE smoke (id UInt32, note String) ENGINE = MergeTree ORDER BY id")
        client.insert(
            "smoke", [[1, 2], ["a", "b"]], column_names=["id", "note"], column_oriented=True
        )
        rows = client.query("SELECT count() FROM smoke").result_rows[0][0]
        client.close()
    _say("clickhouse", f"chDB wrote and read back {rows} rows")
    print(f"done in {time.monotonic() - started:.1f}s")


def main() -> None:
    import os

    pg = {
        "port": os.environ.get("SLUICEGATE_PG_PORT", "55432"),
        "db": os.environ.get("SLUICEGATE_PG_DB", "app"),
        "user": os.environ.get("SLUICEGATE_PG_USER", "cdc"),
        "password": os.environ.get("SLUICEGATE_PG_PASSWORD", "cdc"),
    }
    run(Settings(), pg)


if __name__ == "__main__":
    main()
