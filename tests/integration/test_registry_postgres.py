"""The registry on PostgreSQL (server mode): migrations, registration, identity, deletes,
tokens and a second instance reading what the first wrote."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support.serving import start_server

from registry import Compatibility, Principal, Registry, SchemaType

Stack = Any  # tests/integration/conftest.py Stack
ADMIN = Principal("admin", admin=True)


def _avro(*fields: tuple[str, str]) -> str:
    return json.dumps(
        {"type": "record", "name": "Row", "fields": [{"name": n, "type": t} for n, t in fields]}
    )


@pytest.fixture
def pg_url(stack: Stack, unique: str) -> Iterator[str]:
    name = f"sg_registry_{unique}"
    admin_dsn = f"host={stack.pg_host} port={stack.pg_port} dbname=postgres user=postgres"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@{stack.pg_host}:{stack.pg_port}/{name}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_registry_on_postgresql(pg_url: str) -> None:
    a = Registry.open(pg_url, admin_token="adm")
    b: Registry | None = None
    try:
        first = a.register("pg.rows", _avro(("id", "long")), SchemaType.AVRO, principal=ADMIN)
        assert (first.id, first.version, first.created) == (1, 1, True)
        same = a.register("pg.rows", _avro(("id", "long")), SchemaType.AVRO, principal=ADMIN)
        assert same.created is False
        a.set_subject_compatibility("pg.rows", Compatibility.NONE, principal=ADMIN)
        second = a.register("pg.rows", _avro(("id", "string")), SchemaType.AVRO, principal=ADMIN)
        assert second.version == 2
        token = a.create_token("db-team")
        assert a.delete_version("pg.rows", 1, permanent=False, principal=ADMIN) == 1

        b = Registry.open(pg_url)  # a second process on the same database
        assert b.versions("pg.rows") == [2]
        assert b.versions("pg.rows", deleted=True) == [1, 2]
        assert b.schema_by_id(first.id).schema == a.schema_by_id(first.id).schema
        assert b.compatibility("pg.rows") is Compatibility.NONE
        assert b.authenticate(f"Bearer {token}") == Principal("db-team")
        assert b.metadata("pg.rows").owner == "admin"
    finally:
        a.close()
        if b is not None:
            b.close()


def test_serve_with_a_postgresql_registry(
    pg_url: str, tmp_path: Path, unique: str, request: pytest.FixtureRequest
) -> None:
    srv = start_server(tmp_path / "sg", {"SLUICEGATE_REGISTRY_DB_URL": pg_url})
    try:
        subject = f"pg-{unique}"
        with srv.client() as c:
            assert c.post(
                f"/subjects/{subject}/versions", json={"schema": _avro(("id", "long"))}
            ).json() == {"id": 1, "version": 1}
        assert not (srv.data_dir / "registry.db").exists()
        reader = Registry.open(pg_url)
        try:
            assert (
                reader.latest(subject).schema == '{"fields":[{"name":"id","type":"long"}],'
                '"name":"Row","type":"record"}'
            )
        finally:
            reader.close()
    finally:
        srv.stop()
