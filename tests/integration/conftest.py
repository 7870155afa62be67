"""The integration tier: the real local stack (Kafka, Connect + Debezium, PostgreSQL) and
chDB. `make test` starts the stack once; point the tests at a running one with the same
SLUICEGATE_* variables the product reads."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from confluent_kafka.admin import AdminClient


@dataclass(frozen=True)
class Stack:
    kafka_bootstrap: str
    connect_url: str
    pg_host: str
    pg_port: int
    pg_db: str
    pg_user: str
    pg_password: str

    @property
    def pg_dsn(self) -> str:
        return (
            f"host={self.pg_host} port={self.pg_port} dbname={self.pg_db} "
            f"user={self.pg_user} password={self.pg_password}"
        )


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The running stack; fails (never skips) with a pointer to `make up` when it is down."""
    s = Stack(
        kafka_bootstrap=os.environ.get("SLUICEGATE_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
        connect_url=os.environ.get("SLUICEGATE_CONNECT_URL", "http://127.0.0.1:18083"),
        pg_host=os.environ.get("SLUICEGATE_PG_HOST", "127.0.0.1"),
        pg_port=int(os.environ.get("SLUICEGATE_PG_PORT", "55432")),
        pg_db=os.environ.get("SLUICEGATE_PG_DB", "app"),
        pg_user=os.environ.get("SLUICEGATE_PG_USER", "cdc"),
        pg_password=os.environ.get("SLUICEGATE_PG_PASSWORD", "cdc"),
    )
    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap, "log_level": 0})
    try:
        md = admin.list_topics(timeout=10)
        assert md.brokers
        with urllib.request.urlopen(s.connect_url + "/health", timeout=10) as r:  # noqa: S310
            json.load(r)
    except Exception as exc:  # any failure here means the stack is not there
        pytest.fail(f"local stack not reachable ({exc}); run `make up` first", pytrace=False)
    return s


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    """One HTTP session for a module's property-based runs (schemathesis calls through it)."""
    with requests.Session() as s:
        yield s


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chDB data directory tests may open in this process (chDB allows one path
    per process)."""
    return tmp_path_factory.mktemp("chdb")
