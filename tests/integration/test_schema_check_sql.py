"""The check of a candidate against stored events, on chDB in this process: field names a
caller chose (quotes, backslashes, spaces, dots inside nested objects) are only ever SQL
string literals, Avro subjects are checked too, and both passes agree with a brute-force
validation of every stored event."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson
import pytest

from materializer.changes._log import check_log
from materializer.features._upcast import plan_reader
from registry import Principal, Registry, SchemaType

ADMIN = Principal("admin", admin=True)
DB = "schema_check_sql"
HOSTILE = "it's \\ a') OR 1=1 --"


@pytest.fixture(scope="module")
def client(chdb_path: Path) -> Iterator[Any]:
    c = clickhouse_connect.get_client(interface="chdb", path=str(chdb_path))
    c.command(f"CREATE DATABASE IF NOT EXISTS {DB}")
    c.command(
        f"CREATE TABLE IF NOT EXISTS {DB}.events (event_id String, subject String, "
        "payload_version UInt32, payload String) ENGINE = MergeTree ORDER BY (subject, event_id)"
    )
    c.command(f"USE {DB}")
    yield c
    c.command(f"DROP DATABASE IF EXISTS {DB}")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(f"sqlite:///{tmp_path / 'registry.db'}")
    yield reg
    reg.close()


def _store(client: Any, subject: str, payloads: list[dict[str, Any]], version: int = 1) -> None:
    client.insert(
        "events",
        [
            [f"{subject}-{i}", subject, version, orjson.dumps(p).decode()]
            for i, p in enumerate(payloads)
        ],
        column_names=["event_id", "subject", "payload_version", "payload"],
    )


def test_hostile_field_names_are_literals(client: Any, registry: Registry) -> None:
    v1 = {
        "type": "object",
        "properties": {
            HOSTILE: {"type": "integer"},
            "n": {"type": "object", "properties": {"in'ner": {"type": "string"}}},
        },
    }
    registry.register("t.hostile", orjson.dumps(v1).decode(), SchemaType.JSON, principal=ADMIN)
    payloads = [
        {HOSTILE: 1, "n": {"in'ner": "x"}},
        {HOSTILE: "one", "n": {"in'ner": "y"}},
        {"n": {}},
        {HOSTILE: 2, "n": {"in'ner": 3}},
    ]
    _store(client, "t.hostile", payloads)
    strict = {**v1, "required": [HOSTILE, "n"]}
    strict["properties"]["n"] = {**v1["properties"]["n"], "required": ["in'ner"]}
    candidate = registry.candidate("t.hostile", orjson.dumps(strict).decode(), SchemaType.JSON)
    reader = plan_reader(registry, "t.hostile", candidate.plan)
    log = check_log(client, candidate, reader, sample=100)
    found = {(v.path, v.rule): set(v.first_ids) for v in log.violations}
    assert found == {
        (f"$.{HOSTILE}", "type"): {"t.hostile-1"},
        (f"$.{HOSTILE}", "required"): {"t.hostile-2"},
        ("$.n.in'ner", "required"): {"t.hostile-2"},
        ("$.n.in'ner", "type"): {"t.hostile-3"},
    }
    assert log.failing == 3
    # the brute force: every stored event validated in full
    assert log.sample == 4
    assert log.sample_failing == sum(1 for p in payloads if candidate.violations(p))


def test_avro_subjects(client: Any, registry: Registry) -> None:
    v1 = {
        "type": "record",
        "name": "Click",
        "fields": [
            {"name": "user", "type": "string"},
            {"name": "n", "type": ["null", "long"], "default": None},
        ],
    }
    registry.register("t.avro", orjson.dumps(v1).decode(), SchemaType.AVRO, principal=ADMIN)
    payloads = [{"user": "a", "n": 1}, {"user": "b", "n": None}, {"user": "c", "n": 4}]
    _store(client, "t.avro", payloads)
    v2 = {**v1, "fields": [v1["fields"][0], {"name": "n", "type": "long", "default": 0}]}
    candidate = registry.candidate("t.avro", orjson.dumps(v2).decode(), SchemaType.AVRO)
    log = check_log(client, candidate, plan_reader(registry, "t.avro", candidate.plan))
    assert [(v.path, v.rule, v.first_ids) for v in log.violations] == [
        ("$.n", "required", ["t.avro-1"])
    ]
    assert (log.sample, log.sample_failing) == (3, 1)
    assert log.summary().startswith("1 of 3 stored events would not read as version 2")
