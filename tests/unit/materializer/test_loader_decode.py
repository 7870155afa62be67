"""Kafka records -> events rows or dead letters, with the real registry (SQLite)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from materializer.loader._batch import EVENT_COLUMNS, DeadLetter, EventColumns
from materializer.loader._decode import RecordDecoder
from registry import Compatibility, Principal, Registry, SchemaType, SubjectMetadata
from sluicegate.envelope import CdcOp, Envelope, Source, frame
from sluicegate.errors import Unavailable

ADMIN = Principal("admin", admin=True)
JSON_V1 = {
    "type": "object",
    "properties": {"user": {"type": "string"}, "ts": {"type": "string"}},
    "required": ["user", "ts"],
}
RULE_V2 = {  # renames user -> user_id: a migration rule upcasts v1 events
    "type": "object",
    "properties": {"user_id": {"type": "string"}, "ts": {"type": "string"}},
    "required": ["user_id", "ts"],
}
CLICK_V1 = {
    "type": "record",
    "name": "Click",
    "fields": [{"name": "user", "type": "string"}, {"name": "n", "type": "long"}],
}
CLICK_V2 = {  # adds a field with a default: Avro resolution upcasts v1 events
    "type": "record",
    "name": "Click",
    "fields": [
        {"name": "user", "type": "string"},
        {"name": "n", "type": "long"},
        {"name": "weight", "type": "int", "default": 1},
    ],
}
BAD_V2 = {  # NONE compatibility: a v1 event cannot be read as this version
    "type": "record",
    "name": "Click",
    "fields": [{"name": "user", "type": "long"}],
}


@dataclass
class Rec:
    _topic: str
    _value: bytes | None
    _headers: list[tuple[str, bytes]] | None
    _key: bytes | None = b"u1"
    _offset: int = 7

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(f"sqlite:///{tmp_path / 'r.db'}")
    meta = SubjectMetadata("t.json", owner="web", entity_key=["user"], event_time="ts")
    reg.register(
        "t.json", orjson.dumps(JSON_V1).decode(), SchemaType.JSON, principal=ADMIN, metadata=meta
    )
    for version in (CLICK_V1, CLICK_V2):
        reg.register("t.click", orjson.dumps(version).decode(), SchemaType.AVRO, principal=ADMIN)
    reg.register("t.rule", orjson.dumps(JSON_V1).decode(), SchemaType.JSON, principal=ADMIN)
    reg.register(
        "t.rule",
        orjson.dumps(RULE_V2).decode(),
        SchemaType.JSON,
        principal=ADMIN,
        migration=[{"op": "rename", "from": "user", "to": "user_id"}],
    )
    reg.register("t.bad", orjson.dumps(CLICK_V1).decode(), SchemaType.AVRO, principal=ADMIN)
    reg.set_subject_compatibility("t.bad", Compatibility.NONE, principal=ADMIN)
    reg.register("t.bad", orjson.dumps(BAD_V2).decode(), SchemaType.AVRO, principal=ADMIN)
    yield reg
    reg.close()


def record(
    registry: Registry,
    subject: str,
    version: int,
    payload: dict,
    position: dict[str, str] | None = None,
    **kw: object,
) -> Rec:
    schema = registry.version(subject, version)
    env = Envelope(
        event_id=f"e-{version}",
        subject=subject,
        schema_id=schema.id,
        schema_version=version,
        entity_key="u1",
        occurred_at=1_700_000_000_123,
        ingested_at=1_700_000_001_000,
        source=Source.CDC if position else Source.HTTP,
        producer="web",
        payload=payload,
        op=CdcOp.UPDATE if position else None,
        position=position or {},
    )
    return Rec("sg." + subject, frame(schema.id, schema.encode(payload)), env.headers(), **kw)  # type: ignore[arg-type]


def decode(registry: Registry, *records: Rec) -> tuple[list[dict], list[DeadLetter]]:
    """The records decoded one by one, as a replay does; the load path (one call per run
    of records of one topic, as the consumer cuts loads) must give the same rows and dead
    letters."""
    rows, dead = EventColumns(), []
    decoder = RecordDecoder(registry, {})  # type: ignore[arg-type]
    for r in records:
        decoder.add(r, rows, dead, now_ms=42)
    loaded, loaded_dead = EventColumns(), []
    decoder = RecordDecoder(registry, {})  # type: ignore[arg-type]
    for _, run in itertools.groupby(records, key=Rec.topic):
        decoder.add_load(list(run), loaded, loaded_dead, now_ms=42)
    assert (loaded.rows(), loaded_dead) == (rows.rows(), dead)
    return [dict(zip(EVENT_COLUMNS, row, strict=True)) for row in rows.rows()], dead


def test_v1_and_v2_events_read_the_same_way(registry: Registry) -> None:
    v1 = record(registry, "t.click", 1, {"user": "u1", "n": 3})
    v2 = record(registry, "t.click", 2, {"user": "u1", "n": 3, "weight": 1})
    rows, dead = decode(registry, v1, v2)
    assert dead == []
    assert [orjson.loads(r["payload"]) for r in rows] == [{"user": "u1", "n": 3, "weight": 1}] * 2
    assert [(r["schema_version"], r["payload_version"]) for r in rows] == [(1, 2), (2, 2)]
    first = rows[0]
    assert first["event_id"] == "e-1" and first["subject"] == "t.click"
    assert first["entity_key"] == b"u1" and first["source"] == "http" and first["op"] == ""
    assert first["occurred_at"] == 1_700_000_000_123 and first["ingested_at"] == 1_700_000_001_000
    assert (first["kafka_topic"], first["kafka_partition"], first["kafka_offset"]) == (
        "sg.t.click",
        2,
        7,
    )
    assert first["schema_id"] == registry.version("t.click", 1).id


def test_migration_rule_upcasts_an_old_json_event(registry: Registry) -> None:
    v1 = record(registry, "t.rule", 1, {"user": "u1", "ts": "x"})
    v2 = record(registry, "t.rule", 2, {"user_id": "u1", "ts": "x"})
    rows, dead = decode(registry, v1, v2)
    assert dead == []
    assert [orjson.loads(r["payload"]) for r in rows] == [{"user_id": "u1", "ts": "x"}] * 2
    assert [(r["schema_version"], r["payload_version"]) for r in rows] == [(1, 2), (2, 2)]


def test_cdc_events_keep_their_source_position(registry: Registry) -> None:
    cdc = record(
        registry,
        "t.json",
        1,
        {"user": "u9", "ts": "x"},
        position={"lsn": "24023128", "txid": "771"},
    )
    http = record(registry, "t.json", 1, {"user": "u9", "ts": "y"})
    rows, dead = decode(registry, cdc, http)
    assert dead == []
    assert [(r["source"], r["op"], r["source_lsn"], r["source_txid"]) for r in rows] == [
        ("cdc", "u", 24023128, 771),
        ("http", "", None, None),
    ]


def test_json_payload_is_kept_as_sent(registry: Registry) -> None:
    rows, dead = decode(registry, record(registry, "t.json", 1, {"user": "u9", "ts": "x"}))
    assert dead == [] and orjson.loads(rows[0]["payload"]) == {"user": "u9", "ts": "x"}


def test_poison_records_become_dead_letters_with_their_position(registry: Registry) -> None:
    good = record(registry, "t.json", 1, {"user": "u1", "ts": "x"})
    schema_id = registry.version("t.json", 1).id
    poison = [
        Rec("sg.t.json", b"not framed at all", good._headers),
        Rec("sg.t.json", frame(999_999, b"{}"), good._headers),
        Rec("sg.t.json", frame(schema_id, b"{broken json"), good._headers),
        Rec("sg.t.json", None, good._headers),
        Rec("sg.t.json", good._value, [h for h in good._headers or [] if h[0] != "ce_id"]),
        Rec("sg.t.other", good._value, good._headers),
        record(registry, "t.bad", 1, {"user": "u1", "n": 1}),  # its migration fails
    ]
    rows, dead = decode(registry, good, *poison)
    assert len(rows) == 1
    reasons = [d.error for d in dead]
    assert "Confluent wire format" in reasons[0]
    assert "unknown schema id 999999" in reasons[1]
    assert "undecodable under schema id" in reasons[2]
    assert "tombstone" in reasons[3]
    assert "ce_id" in reasons[4]
    assert "does not match" in reasons[5]
    assert "migration from version 1 failed" in reasons[6]
    assert all((d.partition, d.offset, d.key, d.at_ms) == (2, 7, b"u1", 42) for d in dead)
    assert dead[0].value == b"not framed at all" and dead[0].topic == "sg.t.json"


def _with(rec: Rec, **headers: bytes | None) -> Rec:
    """``rec`` with headers replaced (a None value drops the header)."""
    kept = [(k, v) for k, v in rec._headers or [] if k not in headers]
    added = [(k, v) for k, v in headers.items() if v is not None]
    return Rec(rec._topic, rec._value, kept + added, rec._key, rec._offset)


def test_a_load_reads_every_time_form_and_dead_letters_only_the_bad_record(
    registry: Registry,
) -> None:
    good = record(registry, "t.json", 1, {"user": "u1", "ts": "x"})
    forms = {  # header text -> epoch ms (the forms beyond milliseconds are read one by one)
        b"2023-11-14T22:13:20.123Z": 1_700_000_000_123,
        b"2023-11-15T00:13:20.123+02:00": 1_700_000_000_123,
        b"2023-11-14T22:13:20.123456Z": 1_700_000_000_123,
        b"2023-11-14T22:13:20.123": 1_700_000_000_123,
        b"2023-11-14 22:13:20Z": 1_700_000_000_000,
    }
    timed = [_with(good, ce_time=text) for text in forms]
    rows, dead = decode(registry, *timed)
    assert dead == [] and [r["occurred_at"] for r in rows] == list(forms.values())
    rows, dead = decode(registry, good, _with(good, ce_time=b"yesterday"), good)
    assert len(rows) == 2 and len(dead) == 1 and "yesterday" in dead[0].error


def test_a_load_mixing_versions_and_odd_headers_reads_each_record_as_alone(
    registry: Registry,
) -> None:
    v1 = record(registry, "t.rule", 1, {"user": "u1", "ts": "x"})
    v2 = record(registry, "t.rule", 2, {"user_id": "u2", "ts": "y"})
    odd = [
        _with(v2, ce_sourcekind=b"cdc", ce_op=b"c", ce_lsn=b"12", ce_txid=b"x7"),
        _with(v2, ce_sourcekind=b"ftp"),  # no such source kind
        _with(v2, ce_schemaversion=b"02"),
        _with(v2, ce_producer=None),
        _with(v2, ce_id=b"\xff"),  # not UTF-8
        Rec(v2._topic, v2._value, v2._headers, b"\xffkey"),
        Rec(v2._topic, v2._value, v2._headers, None),
    ]
    rows, dead = decode(registry, v2, v1, *odd, v1)
    assert [r["payload_version"] for r in rows] == [2] * 7
    assert [r["source_lsn"] for r in rows][2:3] == [12] and rows[2]["source_txid"] is None
    assert rows[4]["producer"] == "" and rows[5]["entity_key"] == b""
    assert len(dead) == 3 and "'ftp'" in dead[0].error
    assert all(d.error.startswith("bad CloudEvents header") for d in dead)


class _CountingRegistry:
    """The real registry, counting the lookups the decoder makes."""

    def __init__(self, registry: Registry) -> None:
        self.registry, self.lookups = registry, 0

    def schema_by_id(self, schema_id: int) -> object:
        self.lookups += 1
        return self.registry.schema_by_id(schema_id)

    def latest(self, subject: str) -> object:
        self.lookups += 1
        return self.registry.latest(subject)

    def upcast(self, subject: str, from_version: int, payload: dict) -> object:
        return self.registry.upcast(subject, from_version, payload)


def test_a_load_of_unregistered_records_asks_the_registry_once_per_id(
    registry: Registry,
) -> None:
    good = record(registry, "t.json", 1, {"user": "u1", "ts": "x"})
    unknown_id = Rec("sg.t.json", frame(999_999, b"{}"), good._headers)
    unknown_subject = Rec("sg.t.nobody", good._value, _with(good, ce_type=b"t.nobody")._headers)
    counting = _CountingRegistry(registry)
    for rec in (unknown_id, unknown_subject):
        dead: list[DeadLetter] = []
        counting.lookups = 0
        RecordDecoder(counting, {}).add_load([rec] * 500, EventColumns(), dead, now_ms=1)  # type: ignore[arg-type]
        assert len(dead) == 500 and counting.lookups <= 2


class _BrokenRegistry:
    """A registry whose database is down."""

    def schema_by_id(self, schema_id: int) -> None:
        raise RuntimeError("database is locked")

    def latest(self, subject: str) -> None:
        raise RuntimeError("database is locked")

    def upcast(self, subject: str, from_version: int, payload: dict) -> None:
        raise RuntimeError("database is locked")


def test_registry_failure_is_not_poison(registry: Registry) -> None:
    """A load waits for the registry to come back; its records are never dead-lettered."""
    good = record(registry, "t.json", 1, {"user": "u1", "ts": "x"})
    decoder = RecordDecoder(_BrokenRegistry(), {})  # type: ignore[arg-type]
    rows, dead = EventColumns(), []
    with pytest.raises(Unavailable, match="database is locked"):
        decoder.add(good, rows, dead, now_ms=1)
    assert not dead and not len(rows)
