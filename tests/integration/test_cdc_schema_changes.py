"""Schema changes mid-stream: a compatible one registers the next version and the rows
carry it; one the table's level refuses stops the table with a visible error and loses
no row; once the owner relaxes the level or registers the version with a migration rule,
the held rows flow on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.cdc_helpers import CdcHarness
from support.serving import start_server


@pytest.fixture
def cdc(stack, tmp_path: Path, unique: str, request: pytest.FixtureRequest) -> Iterator[CdcHarness]:  # type: ignore[no-untyped-def]
    h = CdcHarness(stack, tmp_path, unique, start_server)
    yield h
    h.cleanup()


def _metric(server_url: str, name: str, table: str) -> float | None:
    text = httpx.get(server_url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + "{") and f'table="public.{table}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_added_nullable_column_registers_version_2(cdc: CdcHarness) -> None:
    table = cdc.create_table("id int PRIMARY KEY, name text NOT NULL")
    cdc.sql(f"INSERT INTO {table} VALUES (1, 'a')")
    cdc.write_config([{"name": table}])
    cdc.start()
    cdc.apply()
    reader = cdc.reader(table)
    reader.wait_count(1)
    cdc.sql(
        f"INSERT INTO {table} VALUES (2, 'b')",
        f"ALTER TABLE {table} ADD COLUMN note text",
        f"INSERT INTO {table} VALUES (3, 'c', 'hello')",
        f"UPDATE {table} SET note = 'later' WHERE id = 1",
    )
    changes = reader.wait_count(4)
    assert [(c.op, c.key, c.version) for c in changes] == [
        ("r", "1", 1),
        ("c", "2", 1),
        ("c", "3", 2),
        ("u", "1", 2),
    ]
    assert "note" not in changes[1].payload
    assert changes[2].payload["note"] == "hello" and changes[3].payload["note"] == "later"
    with cdc.server.client() as http:
        v2 = http.get(f"/subjects/{cdc.subject(table)}/versions/2").json()
        assert http.get(f"/subjects/{cdc.subject(table)}/versions").json() == [1, 2]
    assert v2["schemaType"] == "JSON" and '"note":{"type":["string","null"]}' in v2["schema"]
    assert cdc.table_status(table)["schema_version"] == 2


def test_refused_change_stops_the_table_until_the_level_is_relaxed(cdc: CdcHarness) -> None:
    table = cdc.create_table("id int PRIMARY KEY, name text NOT NULL, qty int")
    cdc.sql(f"INSERT INTO {table} VALUES (1, 'a', 1)")
    cdc.write_config([{"name": table, "compatibility": "FORWARD", "on_incompatible": "stop"}])
    cdc.start()
    cdc.apply()
    reader = cdc.reader(table)
    reader.wait_count(1)
    # FORWARD: version 1 readers need `name`; dropping it is refused
    cdc.sql(
        f"INSERT INTO {table} VALUES (2, 'b', 2)",
        f"ALTER TABLE {table} DROP COLUMN name",
        f"INSERT INTO {table} VALUES (3, 3)",
        f"UPDATE {table} SET qty = 10 WHERE id = 1",
        f"DELETE FROM {table} WHERE id = 2",
    )
    st = cdc.wait_table_state(table, "stopped")
    assert "incompatible change refused (FORWARD)" in st["error"]
    assert "/name: REQUIRED_ADDED" in st["error"]
    assert st["held_offset"] is not None and st["pending_schema"]
    assert _metric(cdc.server.url, "sluicegate_cdc_table_stopped", table) == 1.0
    status = cdc.cli("cdc", "status", cdc.name)
    assert status.returncode == 1
    assert f"public.{table} -> cdc.{cdc.name}.{table} (v1): stopped" in status.stdout
    assert "error: incompatible change refused (FORWARD)" in status.stdout
    assert "held at cdcraw." in status.stdout

    # a restarted server reports the hold from its first answer, before it re-reads the row
    cdc.stop_server()
    cdc.start()
    states = []
    deadline = time.monotonic() + 10
    while not states or states[-1]["state"] == "starting":
        assert time.monotonic() < deadline, f"still starting after 10 s: {states[-1:]}"
        states.append(cdc.table_status(table))
    assert {s["state"] for s in states} <= {"starting", "stopped"}, states
    assert states[-1]["held_since"] == st["held_since"]
    assert "incompatible change refused (FORWARD)" in states[-1]["error"]

    # nothing after the refused row was written, and nothing was skipped
    reader.poll(2)
    assert [(c.op, c.key) for c in reader.ordered()] == [("r", "1"), ("c", "2")]
    cdc.sql(f"INSERT INTO {table} VALUES (4, 4)")  # arrives while the table is held

    with cdc.server.client() as http:
        r = http.put(f"/config/{cdc.subject(table)}", json={"compatibility": "NONE"})
        assert r.status_code == 200, r.text
    changes = reader.wait_count(6)
    assert [(c.op, c.key, c.version) for c in changes] == [
        ("r", "1", 1),
        ("c", "2", 1),
        ("c", "3", 2),
        ("u", "1", 2),
        ("d", "2", 2),
        ("c", "4", 2),
    ]
    assert "name" not in changes[2].payload
    st = cdc.wait_table_state(table, "running")
    assert st["error"] is None and st["schema_version"] == 2
    assert _metric(cdc.server.url, "sluicegate_cdc_table_stopped", table) == 0.0


def test_owner_registers_a_migration_rule_and_held_rows_flow(cdc: CdcHarness) -> None:
    table = cdc.create_table("id int PRIMARY KEY, name text NOT NULL")
    cdc.sql(f"INSERT INTO {table} VALUES (1, 'a')")
    cdc.write_config([{"name": table}])  # the registry's default level: BACKWARD
    cdc.start()
    cdc.apply()
    reader = cdc.reader(table)
    reader.wait_count(1)
    # BACKWARD: a NOT NULL column without a default cannot read old rows (PostgreSQL only
    # allows adding one to an empty table)
    cdc.sql(
        f"DELETE FROM {table}",
        f"ALTER TABLE {table} ADD COLUMN qty int NOT NULL",
        f"INSERT INTO {table} VALUES (2, 'b', 5)",
    )
    st = cdc.wait_table_state(table, "stopped")
    assert "incompatible change refused (BACKWARD)" in st["error"]
    assert "/qty: REQUIRED_ADDED" in st["error"]
    # the delete (old shape, version 1) went through before the refused insert
    reader.wait_count(2)

    with cdc.server.client() as http:
        r = http.post(
            f"/subjects/{cdc.subject(table)}/versions",
            json={
                "schema": st["pending_schema"],
                "schemaType": "JSON",
                "migration": [{"op": "add", "field": "qty", "default": 0}],
            },
        )
        assert r.status_code == 200, r.text
    changes = reader.wait_count(3)
    assert [(c.op, c.key, c.version) for c in changes] == [
        ("r", "1", 1),
        ("d", "1", 1),
        ("c", "2", 2),
    ]
    assert changes[2].payload["qty"] == 5
    cdc.wait_table_state(table, "running")


def test_migrate_policy_registers_the_rule_itself(cdc: CdcHarness) -> None:
    table = cdc.create_table("id int PRIMARY KEY, name text NOT NULL, legacy text")
    cdc.sql(f"INSERT INTO {table} VALUES (1, 'a', 'x')")
    cdc.write_config([{"name": table, "on_incompatible": "migrate"}])
    cdc.start()
    cdc.apply()
    reader = cdc.reader(table)
    reader.wait_count(1)
    # BACKWARD with a closed schema refuses a dropped column; `migrate` adds a drop rule
    cdc.sql(f"ALTER TABLE {table} DROP COLUMN legacy", f"INSERT INTO {table} VALUES (2, 'b')")
    changes = reader.wait_count(2)
    assert [(c.op, c.key, c.version) for c in changes] == [("r", "1", 1), ("c", "2", 2)]
    with cdc.server.client() as http:
        v2 = http.get(f"/subjects/{cdc.subject(table)}/versions/2").json()
    assert cdc.table_status(table)["state"] == "running"
    assert v2["version"] == 2


def test_a_record_that_is_no_change_event_holds_the_table(cdc: CdcHarness) -> None:
    from confluent_kafka import Producer

    table = cdc.create_table("id int PRIMARY KEY")
    cdc.sql(f"INSERT INTO {table} VALUES (1)")
    cdc.write_config([{"name": table}])
    cdc.start()
    cdc.apply()
    reader = cdc.reader(table)
    reader.wait_count(1)
    producer = Producer({"bootstrap.servers": cdc.stack.kafka_bootstrap})
    producer.produce(f"cdcraw.{cdc.name}.public.{table}", b"not a change event", b'{"id": 9}')
    assert producer.flush(10) == 0
    cdc.sql(f"INSERT INTO {table} VALUES (2)")
    st = cdc.wait_table_state(table, "stopped")
    assert st["error"].startswith(f"undecodable change at cdcraw.{cdc.name}.public.{table}[0]@1:")
    reader.poll(3)
    assert [(c.op, c.key) for c in reader.ordered()] == [("r", "1")]  # nothing skipped past it
