"""Helpers of the CDC integration tests: a source table in the shared PostgreSQL, a
database config in its own directory, a real `sluicegate serve` bridging it, the
`sluicegate cdc` CLI, and a reader of the governed topic. Cleanup removes the connector,
its offsets, slot and publication, and the tables."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
import yaml
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.admin import AdminClient

from sluicegate.envelope import Envelope, unframe
from sluicegate.naming import cdc_subject, topic_for_subject

ROOT = Path(__file__).resolve().parents[2]
SLUICEGATE = str(ROOT / ".venv" / "bin" / "sluicegate")
PASSWORD_ENV = "SG_TEST_CDC_PASSWORD"


@dataclass
class Change:
    """One governed record, decoded the way any consumer would."""

    key: str | None
    op: str
    version: int
    schema_id: int
    payload: dict[str, Any]
    occurred_at: int
    ingested_at: int
    lsn: int
    txid: str | None
    event_id: str
    source: str
    producer: str


class GovernedReader:
    """Reads a governed topic from the beginning."""

    def __init__(self, bootstrap: str, subject: str) -> None:
        self.topic = topic_for_subject(subject)
        self.changes: list[Change] = []
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"test-reader-{subject}-{time.time_ns()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "topic.metadata.refresh.interval.ms": 1000,
                "log_level": 0,
            }
        )
        self._consumer.subscribe([self.topic])

    def close(self) -> None:
        self._consumer.close()

    def poll(self, seconds: float = 0.5) -> None:
        for m in self._consumer.consume(1000, timeout=seconds):
            err = m.error()
            if err is not None:
                if err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._PARTITION_EOF):
                    continue
                raise AssertionError(f"consumer error: {err}")
            schema_id, body = unframe(m.value())
            payload = orjson.loads(body)
            env = Envelope.from_record(m.key(), m.headers(), schema_id, payload)
            self.changes.append(
                Change(
                    key=m.key().decode() if m.key() is not None else None,
                    op=env.op.value if env.op else "",
                    version=env.schema_version,
                    schema_id=schema_id,
                    payload=payload,
                    occurred_at=env.occurred_at,
                    ingested_at=env.ingested_at,
                    lsn=int(env.position["lsn"]),
                    txid=env.position.get("txid"),
                    event_id=env.event_id,
                    source=env.source.value,
                    producer=env.producer,
                )
            )

    def wait_for(
        self, predicate: Callable[[list[Change]], bool], timeout: float = 60, what: str = "changes"
    ) -> list[Change]:
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if predicate(self.changes):
                return self.ordered()
            if time.monotonic() > deadline:
                seen = [(c.op, c.key, c.version) for c in self.ordered()]
                raise AssertionError(f"timed out waiting for {what}; seen {seen}")

    def wait_count(self, n: int, timeout: float = 60) -> list[Change]:
        return self.wait_for(lambda cs: len({c.event_id for c in cs}) >= n, timeout, f"{n} changes")

    def ordered(self) -> list[Change]:
        """One record per event id (replays collapse), in commit (LSN) order."""
        unique: dict[str, Change] = {}
        for c in self.changes:
            unique.setdefault(c.event_id, c)
        return sorted(unique.values(), key=lambda c: (c.lsn, c.op != "d"))


@dataclass
class CdcHarness:
    """One database config (name ``t<unique>``) captured by its own server."""

    stack: Any
    workdir: Path
    unique: str
    start_server: Callable[..., Any]
    connect_url: str | None = None
    team: str = "inventory"
    server: Any = None
    readers: list[GovernedReader] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"t{self.unique}"

    @property
    def config_dir(self) -> Path:
        path = self.workdir / "cdc"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def env(self) -> dict[str, str]:
        return {
            "SLUICEGATE_CDC_CONFIG_DIR": str(self.config_dir),
            "SLUICEGATE_CONNECT_URL": self.connect_url or self.stack.connect_url,
            "SLUICEGATE_KAFKA_BOOTSTRAP": self.stack.kafka_bootstrap,
            PASSWORD_ENV: self.stack.pg_password,
        }

    # ------------------------------------------------------------ source database
    def pg(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.stack.pg_dsn, autocommit=True)

    def sql(self, *statements: str, params: Any = None) -> None:
        with self.pg() as conn:
            for s in statements:
                conn.execute(s, params)

    def create_table(self, ddl_columns: str, suffix: str = "items") -> str:
        table = f"{suffix}_{self.unique}"
        self.sql(f"CREATE TABLE {table} ({ddl_columns})")
        self.tables.append(table)
        return table

    # ------------------------------------------------------------ config + CLI
    def write_config(
        self,
        tables: list[dict[str, Any]],
        *,
        connection: dict[str, Any] | None = None,
        **extra: Any,
    ) -> Path:
        doc = {
            "name": self.name,
            "team": self.team,
            "connection": {
                "host": self.stack.pg_host,
                "port": self.stack.pg_port,
                "dbname": self.stack.pg_db,
                "user": self.stack.pg_user,
                "password_env": PASSWORD_ENV,
                **(connection or {}),
            },
            "tables": tables,
            "heartbeat_interval_ms": 5000,
            **extra,
        }
        path = self.config_dir / f"{self.name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        base = dict(self.server.env) if self.server is not None else dict(os.environ)
        full = {**base, **self.env(), **(env or {})}
        return subprocess.run(
            [SLUICEGATE, *args], env=full, capture_output=True, text=True, timeout=180, check=False
        )

    def apply(self) -> subprocess.CompletedProcess[str]:
        r = self.cli("cdc", "apply", self.name)
        assert r.returncode == 0, f"cdc apply failed:\n{r.stdout}\n{r.stderr}"
        return r

    def start(self) -> Any:
        self.server = self.start_server(self.workdir / "sg", self.env())
        return self.server

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()

    def subject(self, table: str) -> str:
        return cdc_subject(self.name, table)

    def reader(self, table: str) -> GovernedReader:
        r = GovernedReader(self.stack.kafka_bootstrap, self.subject(table))
        self.readers.append(r)
        return r

    def bridge_status(self) -> dict[str, Any]:
        with self.server.client() as http:
            r = http.get(f"/v1/cdc/{self.name}")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def table_status(self, table: str) -> dict[str, Any]:
        tables = self.bridge_status()["tables"]
        return next(t for t in tables if t["table"] == f"public.{table}")

    def wait_table_state(self, table: str, state: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                st = self.table_status(table)
            except (AssertionError, StopIteration):
                st = {}
            if st.get("state") == state:
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"{table} not {state} after {timeout} s: {st}")
            time.sleep(0.5)

    # ------------------------------------------------------------ cleanup
    def cleanup(self) -> None:
        for r in self.readers:
            r.close()
        if (self.config_dir / f"{self.name}.yaml").exists():
            r = self.cli("cdc", "delete", self.name, "--drop-slot")
            if r.returncode != 0:
                print(f"cleanup of {self.name} failed: {r.stdout}{r.stderr}")
        self.stop_server()
        with self.pg() as conn:
            for t in self.tables:
                conn.execute(f"DROP TABLE IF EXISTS {t}")
        delete_topics(
            self.stack.kafka_bootstrap,
            (
                f"cdcraw.{self.name}.",
                f"{topic_for_subject(cdc_subject(self.name, ''))}",
                f"__debezium-heartbeat.cdcraw.{self.name}",
            ),
        )


def delete_topics(bootstrap: str, prefixes: tuple[str, ...]) -> None:
    """Delete the topics whose names start with one of ``prefixes``."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefixes)]
    if names:
        for fut in admin.delete_topics(names, operation_timeout=30).values():
            fut.result(30)


def wait_until(check: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)
