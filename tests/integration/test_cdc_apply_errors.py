"""`sluicegate cdc apply` refuses a config it cannot apply, naming the problem, before
anything is created in Kafka Connect."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.cdc_helpers import CdcHarness
from support.serving import start_server


@pytest.fixture
def cdc(stack, tmp_path: Path, unique: str, request: pytest.FixtureRequest) -> Iterator[CdcHarness]:  # type: ignore[no-untyped-def]
    h = CdcHarness(stack, tmp_path, unique, start_server)
    yield h
    h.cleanup()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def _apply_fails(cdc: CdcHarness, **connection: Any) -> str:
    cdc.write_config([{"name": cdc.tables[0]}], connection=connection)
    r = cdc.cli("cdc", "apply", cdc.name)
    assert r.returncode == 1, r.stdout + r.stderr
    connectors = httpx.get(cdc.stack.connect_url + "/connectors", timeout=10).json()
    assert f"sluicegate-{cdc.name}" not in connectors, "nothing is created for a bad config"
    return r.stderr


def test_closed_port_is_named(cdc: CdcHarness) -> None:
    cdc.create_table("id int PRIMARY KEY")
    port = _closed_port()
    err = _apply_fails(cdc, port=port)
    assert f"error: {cdc.name}: connection: cannot connect to postgresql://" in err
    assert f":{port}/" in err and "refused" in err.lower()


def test_unknown_database_is_named(cdc: CdcHarness) -> None:
    cdc.create_table("id int PRIMARY KEY")
    err = _apply_fails(cdc, dbname="no_such_db")
    assert 'database "no_such_db" does not exist' in err


def test_unknown_host_is_named(cdc: CdcHarness) -> None:
    cdc.create_table("id int PRIMARY KEY")
    err = _apply_fails(cdc, host="no-such-host.invalid")
    assert "connection: cannot connect to postgresql://" in err and "no-such-host.invalid" in err


def test_missing_table_and_key_are_named(cdc: CdcHarness) -> None:
    cdc.create_table("id int PRIMARY KEY")
    nokey = cdc.create_table("a int, b text", "nokey")
    cdc.write_config([{"name": cdc.tables[0]}, {"name": f"gone_{cdc.unique}"}, {"name": nokey}])
    r = cdc.cli("cdc", "apply", cdc.name)
    assert r.returncode == 1
    assert f"tables[1].name: table public.gone_{cdc.unique} does not exist" in r.stderr
    assert f"tables[2].key_columns: public.{nokey} has no primary key" in r.stderr


def test_missing_password_variable_is_named(cdc: CdcHarness) -> None:
    cdc.create_table("id int PRIMARY KEY")
    cdc.write_config(
        [{"name": cdc.tables[0]}], connection={"password_env": "SG_TEST_UNSET_VARIABLE"}
    )
    r = cdc.cli("cdc", "apply", cdc.name)
    assert r.returncode == 1
    assert (
        "connection.password_env: environment variable SG_TEST_UNSET_VARIABLE is not set"
        in r.stderr
    )


def test_invalid_config_is_refused_before_connecting(cdc: CdcHarness) -> None:
    cdc.create_table("id int PRIMARY KEY")
    cdc.write_config([{"name": cdc.tables[0], "exclude_colums": ["x"]}], snapshot_mode="sometimes")
    r = cdc.cli("cdc", "apply", cdc.name)
    assert r.returncode == 1
    assert "tables.0.exclude_colums: unknown key" in r.stderr
    assert "snapshot_mode: Input should be 'initial'" in r.stderr


def test_bad_config_file_in_the_directory_is_visible_in_serve(cdc: CdcHarness) -> None:
    (cdc.config_dir / "broken.yaml").write_text("name: Not Valid\n")
    cdc.start()
    with cdc.server.client() as http:
        body = http.get("/v1/cdc").json()
    assert "broken.yaml" in body["invalid_configs"]
    assert "name: String should match pattern" in body["invalid_configs"]["broken.yaml"]
