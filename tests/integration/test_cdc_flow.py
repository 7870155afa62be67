"""A captured table end to end: the snapshot of existing rows, then inserts, updates,
deletes and a truncate, each a governed event with the right op, key, row image, commit
time and source position; the subject is owned by the database's team."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.cdc_helpers import CdcHarness, wait_until
from support.serving import start_server

from sluicegate.envelope import iso_to_ms


@pytest.fixture
def cdc(stack, tmp_path: Path, unique: str, request: pytest.FixtureRequest) -> Iterator[CdcHarness]:  # type: ignore[no-untyped-def]
    h = CdcHarness(stack, tmp_path, unique, start_server)
    yield h
    h.cleanup()


def _commit(cdc: CdcHarness, *statements: str) -> tuple[int, int]:
    """Run statements in one transaction; the wall-clock window around its commit (ms)."""
    with cdc.pg() as conn:
        before = int(time.time() * 1000)
        with conn.transaction():
            for s in statements:
                conn.execute(s)
        after = int(time.time() * 1000)
    return before, after


def test_snapshot_then_every_operation(cdc: CdcHarness) -> None:
    table = cdc.create_table(
        "id int PRIMARY KEY, name text NOT NULL, qty int, price numeric(10,2), "
        "email text, seen_at timestamptz"
    )
    cdc.sql(
        f"INSERT INTO {table} VALUES (1, 'apple', 3, 1.50, 'a@x.io', '2026-01-02 03:04:05+02'),"
        f" (2, 'pear', NULL, 2.25, 'b@x.io', NULL)"
    )
    cdc.write_config([{"name": table, "exclude_columns": ["email"]}])
    cdc.start()
    out = cdc.apply()
    assert f"public.{table} -> cdc.{cdc.name}.{table}" in out.stdout
    reader = cdc.reader(table)

    snapshot = reader.wait_count(2)
    assert sorted((c.op, c.key) for c in snapshot) == [("r", "1"), ("r", "2")]
    first = next(c for c in snapshot if c.key == "1")
    assert {k: v for k, v in first.payload.items() if k != "_committed_at"} == {
        "id": 1,
        "name": "apple",
        "qty": 3,
        "price": "1.50",
        "seen_at": "2026-01-02T01:04:05.000000Z",
    }
    assert "email" not in first.payload  # excluded (PII)
    assert first.version == 1 and first.source == "cdc" and first.producer == cdc.team
    assert iso_to_ms(first.payload["_committed_at"]) == first.occurred_at

    w_insert = _commit(cdc, f"INSERT INTO {table} (id, name, qty) VALUES (3, 'plum', 7)")
    w_update = _commit(cdc, f"UPDATE {table} SET qty = 4 WHERE id = 1")
    w_delete = _commit(cdc, f"DELETE FROM {table} WHERE id = 2")
    w_truncate = _commit(cdc, f"TRUNCATE {table}")
    changes = reader.wait_count(6)
    streamed = [c for c in changes if c.op != "r"]
    assert [(c.op, c.key) for c in streamed] == [("c", "3"), ("u", "1"), ("d", "2"), ("t", None)]
    insert, update, delete, truncate = streamed

    assert insert.payload == {
        "id": 3,
        "name": "plum",
        "qty": 7,
        "price": None,
        "seen_at": None,
        "_committed_at": insert.payload["_committed_at"],
    }
    assert update.payload["qty"] == 4 and update.payload["name"] == "apple"  # the after image
    # the before image of the delete (REPLICA IDENTITY FULL): real values, not type defaults
    assert delete.payload == {
        "id": 2,
        "name": "pear",
        "qty": None,
        "price": "2.25",
        "seen_at": None,
        "_committed_at": delete.payload["_committed_at"],
    }
    assert truncate.payload == {"_committed_at": truncate.payload["_committed_at"]}

    for change, (before, after) in zip(
        streamed, (w_insert, w_update, w_delete, w_truncate), strict=True
    ):
        assert before - 50 <= change.occurred_at <= after + 50, "event time is the commit time"
        assert change.ingested_at >= change.occurred_at
        assert change.txid is not None and change.lsn > 0
        assert change.version == 1
    assert len({c.txid for c in streamed}) == 4  # four transactions
    assert [c.lsn for c in streamed] == sorted(c.lsn for c in streamed)

    with cdc.server.client() as http:
        meta = http.get(f"/v1/subjects/{cdc.subject(table)}/metadata").json()
    assert meta["owner"] == cdc.team
    assert meta["entity_key"] == ["id"]
    assert meta["event_time"] == "_committed_at"

    st = cdc.table_status(table)
    assert st["state"] == "running" and st["by_op"] == {"r": 2, "c": 1, "u": 1, "d": 1, "t": 1}
    status = cdc.cli("cdc", "status", cdc.name)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"connector sluicegate-{cdc.name}: RUNNING" in status.stdout
    assert "slot sluicegate_" in status.stdout and "active" in status.stdout
    assert (
        f"public.{table} -> cdc.{cdc.name}.{table} (v1): running, 6 changes since start, "
        "6 in the log"
    ) in status.stdout


def test_table_without_primary_key_uses_the_configured_key(cdc: CdcHarness) -> None:
    table = cdc.create_table("sku text NOT NULL, warehouse int NOT NULL, qty int", "stock")
    cdc.sql(f"INSERT INTO {table} VALUES ('a', 1, 5)")
    cdc.write_config([{"name": table, "key_columns": ["sku", "warehouse"]}])
    cdc.start()
    cdc.apply()
    reader = cdc.reader(table)
    cdc.sql(f"UPDATE {table} SET qty = 6 WHERE sku = 'a'", f"DELETE FROM {table} WHERE sku = 'a'")
    changes = reader.wait_count(3)
    assert [(c.op, c.key) for c in changes] == [("r", "a|1"), ("u", "a|1"), ("d", "a|1")]
    assert changes[1].payload["qty"] == 6
    with cdc.server.client() as http:
        meta = http.get(f"/v1/subjects/{cdc.subject(table)}/metadata").json()
    assert meta["entity_key"] == ["sku", "warehouse"]


def test_pause_resume_restart(cdc: CdcHarness) -> None:
    table = cdc.create_table("id int PRIMARY KEY")
    cdc.write_config([{"name": table}])
    cdc.start()
    cdc.apply()
    reader = cdc.reader(table)
    connector = f"sluicegate-{cdc.name}"

    def state() -> str:
        return str(
            httpx.get(f"{cdc.stack.connect_url}/connectors/{connector}/status", timeout=10).json()[
                "connector"
            ]["state"]
        )

    assert cdc.cli("cdc", "pause", cdc.name).returncode == 0
    wait_until(lambda: state() == "PAUSED", 30, "PAUSED")
    cdc.sql(f"INSERT INTO {table} VALUES (1)")  # kept in the slot while paused
    paused = cdc.cli("cdc", "status", cdc.name)
    assert paused.returncode == 1 and f"connector {connector}: PAUSED" in paused.stdout
    assert cdc.cli("cdc", "resume", cdc.name).returncode == 0
    reader.wait_count(1)
    assert cdc.cli("cdc", "restart", cdc.name).returncode == 0
    wait_until(lambda: state() == "RUNNING", 60, "RUNNING after restart")
    cdc.sql(f"INSERT INTO {table} VALUES (2)")
    assert [(c.op, c.key) for c in reader.wait_count(2)] == [("c", "1"), ("c", "2")]
