"""Restarts lose no change: a Connect worker killed mid-stream resumes from its stored
offsets, and a restarted `sluicegate serve` resumes the bridge from its committed raw
offsets. Uses its own Connect worker (own port, run dir, group and storage topics); the
shared worker is never touched."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support.cdc_helpers import ROOT, CdcHarness, delete_topics, wait_until
from support.serving import start_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OwnConnect:
    """A Connect worker of this test only, started with stack/connect-up.sh."""

    run_dir: Path
    port: int
    group: str
    kafka_port: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "connect" / "connect.pid"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SLUICEGATE_RUN_DIR": str(self.run_dir),
            "SLUICEGATE_CONNECT_PORT": str(self.port),
            "SLUICEGATE_KAFKA_PORT": self.kafka_port,
            "SLUICEGATE_CONNECT_GROUP": self.group,
            "SLUICEGATE_CONNECT_STORAGE_PREFIX": f"_{self.group}",
            "SLUICEGATE_CONNECT_HEAP": "-Xms128m -Xmx512m",
        }

    def start(self) -> None:
        r = subprocess.run(
            ["bash", str(ROOT / "stack" / "connect-up.sh")],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert r.returncode == 0, f"own Connect worker did not start:\n{r.stdout}\n{r.stderr}"

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop this worker (and only it) by the pid its start script recorded."""
        if not self.pid_file.exists():
            return
        pid = int(self.pid_file.read_text().strip())
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        else:
            wait_until(lambda: not _alive(pid), 60, f"Connect worker {pid} to exit")
        self.pid_file.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a killed child of an exited shell is reaped by init; a zombie counts as gone
    try:
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0
    except FileNotFoundError:
        return False


@pytest.fixture
def own_connect(stack, tmp_path: Path, unique: str) -> Iterator[OwnConnect]:  # type: ignore[no-untyped-def]
    worker = OwnConnect(
        tmp_path / "run",
        _free_port(),
        f"sgtest-connect-{unique}",
        stack.kafka_bootstrap.rsplit(":", 1)[1],
    )
    worker.start()
    yield worker
    worker.kill(signal.SIGTERM)
    delete_topics(stack.kafka_bootstrap, (f"_{worker.group}-",))


@pytest.fixture
def cdc(
    stack,
    own_connect: OwnConnect,
    tmp_path: Path,
    unique: str,  # type: ignore[no-untyped-def]
    request: pytest.FixtureRequest,
) -> Iterator[CdcHarness]:
    h = CdcHarness(stack, tmp_path, unique, start_server, connect_url=own_connect.url)
    yield h
    if not own_connect.pid_file.exists():
        own_connect.start()  # cleanup deletes the connector through its worker
    h.cleanup()


def _streaming_offset_stored(worker: OwnConnect, connector: str) -> bool:
    """True once Connect holds an offset of the connector past its snapshot (KIP-875)."""
    r = httpx.get(f"{worker.url}/connectors/{connector}/offsets", timeout=10)
    if r.status_code != 200:
        return False
    offsets = [o.get("offset") or {} for o in r.json().get("offsets", [])]
    return any("lsn" in o and not o.get("snapshot") for o in offsets)


def _insert(cdc: CdcHarness, table: str, ids: range) -> None:
    with cdc.pg() as conn:
        for i in ids:  # one transaction per row: many separate LSNs and offsets
            conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (i, f"n{i}"))


def test_connect_and_bridge_restarts_lose_no_change(
    cdc: CdcHarness, own_connect: OwnConnect
) -> None:
    table = cdc.create_table("id int PRIMARY KEY, name text NOT NULL")
    cdc.write_config([{"name": table}])
    cdc.start()
    cdc.apply()
    reader = cdc.reader(table)
    _insert(cdc, table, range(1, 21))
    reader.wait_count(20)
    # Connect stores a source task's offsets every second (offset.flush.interval.ms); a
    # worker killed before its first store would take the snapshot again
    wait_until(
        lambda: _streaming_offset_stored(own_connect, f"sluicegate-{cdc.name}"),
        60,
        "Connect to store the connector's streaming offset",
    )

    # 1. the Connect worker dies (SIGKILL: no clean shutdown) while changes keep coming
    own_connect.kill(signal.SIGKILL)
    _insert(cdc, table, range(21, 41))
    cdc.sql(f"UPDATE {table} SET name = name || '!' WHERE id <= 10")
    time.sleep(1)
    own_connect.start()  # same group and storage topics: the connector resumes itself
    changes = reader.wait_count(50, timeout=120)
    status = cdc.cli("cdc", "status", cdc.name)
    assert f"connector sluicegate-{cdc.name}: RUNNING" in status.stdout, (
        status.stdout + status.stderr
    )

    # 2. the bridge's process stops; changes made meanwhile are bridged after its restart
    cdc.stop_server()
    _insert(cdc, table, range(41, 61))
    cdc.sql(f"DELETE FROM {table} WHERE id > 55")
    cdc.start()
    changes = reader.wait_count(75, timeout=120)

    expected = (
        [("c", str(i)) for i in range(1, 41)]
        + [("u", str(i)) for i in range(1, 11)]
        + [("c", str(i)) for i in range(41, 61)]
        + [("d", str(i)) for i in range(56, 61)]
    )
    assert sorted((c.op, c.key) for c in changes) == sorted(expected)
    assert not [c for c in changes if c.op == "r"], "no new snapshot after the restarts"
    updates = {c.key: c.payload["name"] for c in changes if c.op == "u"}
    assert updates == {str(i): f"n{i}!" for i in range(1, 11)}
    # replays (if any) carried the same event ids: one id per change
    assert len({c.event_id for c in reader.changes}) == len(expected)
