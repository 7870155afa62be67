"""The Debezium translation as a pure function: a raw change event in, the governed
record out, with the envelope's headers, the row's key, the commit time and the LSN."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from test_govern import Catalog, _governor

from cdc import COMMIT_TIME_FIELD
from cdc._translate import Undecodable, event_id_of, translate
from registry import Registry
from sluicegate.envelope import CdcOp, Envelope, Source


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(f"sqlite:///{tmp_path / 'registry.db'}")
    yield reg
    reg.close()


def _change(op: str, after: dict[str, object] | None, lsn: int = 42) -> bytes:
    source = {"ts_ms": 1_700_000_000_000, "lsn": lsn, "txId": 7}
    return orjson.dumps({"op": op, "before": None, "after": after, "source": source})


def test_an_update_becomes_a_governed_record(registry: Registry) -> None:
    gov = _governor(registry, Catalog())
    row = {"id": 1, "name": "a", "qty": 2}
    out = translate(
        gov, _change("u", row), b'{"id": 1}', "cdcraw.shop.t", batch_ms=1_700_000_000_500, team="x"
    )
    assert (out.topic, out.key, out.op, out.commit_ms) == (
        "sg.cdc.shop.t",
        b"1",
        "u",
        1_700_000_000_000,
    )
    headers = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in out.headers}
    assert headers["ce_lsn"] == "42" and headers["ce_txid"] == "7"
    assert headers["ce_id"] == event_id_of("cdc.shop.t", "u", 42, "1", None)
    # the same change translated again (a replay) has the same id; the next LSN another
    again = translate(gov, _change("u", row), b'{"id": 1}', "cdcraw.shop.t", batch_ms=0, team="x")
    later = translate(
        gov, _change("u", row, 43), b'{"id": 1}', "cdcraw.shop.t", batch_ms=0, team="x"
    )
    ids = [dict(r.headers)["ce_id"] for r in (out, again, later)]
    assert ids[0] == ids[1] != ids[2]
    payload = orjson.loads(out.value[5:])  # after the 5-byte schema id frame
    assert payload["qty"] == 2 and payload[COMMIT_TIME_FIELD].startswith("2023-11-14T22:13:20")


def test_what_is_no_change_event_is_undecodable(registry: Registry) -> None:
    gov = _governor(registry, Catalog())
    for raw in (b"not json", b'{"op": "u"}', _change("u", None)):
        with pytest.raises(Undecodable):
            translate(gov, raw, b'{"id": 1}', "cdcraw.shop.t", batch_ms=0, team="x")


def test_event_ids_are_the_standard_name_based_uuids() -> None:
    """Ids must never change between releases: a batch replayed by an upgraded bridge has
    to collapse onto the events its predecessor wrote."""
    ns = uuid.UUID("5b0e7a52-3f1c-4d8e-9a57-6c1f2b8d4e31")
    for op, lsn, key, row in (("u", 42, "1", None), ("r", None, "a|b", b'{"id": 1}')):
        digest = hashlib.blake2b(row, digest_size=8).hexdigest() if row else ""
        expected = uuid.uuid5(ns, f"cdc.shop.t|{op}|{lsn}|{key}|{digest}")
        assert event_id_of("cdc.shop.t", op, lsn, key, row) == str(expected)


def test_a_change_carries_the_envelope_headers(registry: Registry) -> None:
    gov = _governor(registry, Catalog())
    row = {"id": 1, "name": "a", "qty": 2}
    out = translate(
        gov, _change("u", row), b'{"id": 1}', "cdcraw.shop.t", batch_ms=1_700_000_000_500, team="x"
    )
    headers = dict(out.headers)
    env = Envelope(
        event_id=headers["ce_id"].decode(),  # type: ignore[union-attr]
        subject="cdc.shop.t",
        schema_id=1,
        schema_version=1,
        entity_key="1",
        occurred_at=1_700_000_000_000,
        ingested_at=1_700_000_000_500,
        source=Source.CDC,
        producer="x",
        payload=row,
        op=CdcOp.UPDATE,
        position={"lsn": "42", "txid": "7"},
    )
    assert out.headers == env.headers()
