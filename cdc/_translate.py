"""Debezium change events into Sluicegate's envelope, as a pure function: one raw record
(its JSON value and key) and the table's governor in, the governed record out. No Kafka,
no I/O beyond the governor's registry lookups."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any, cast

import orjson
import uuid_utils

from cdc._config import COMMIT_TIME_FIELD
from cdc._govern import TableGovernor
from sluicegate.envelope import CdcOp, SharedHeaders, Source, entity_key_of, frame, ms_to_iso
from sluicegate.naming import topic_for_subject

__all__ = ["Outbound", "Undecodable", "event_id_of", "translate"]

_EVENT_NS = uuid_utils.UUID("5b0e7a52-3f1c-4d8e-9a57-6c1f2b8d4e31")


class Undecodable(Exception):
    """A record that is not a Debezium change event (it holds its table)."""


@dataclass
class Outbound:
    """A governed record ready to produce, with what the bridge counts of it."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, str | bytes | None]]
    table: str
    op: str
    commit_ms: int | None


def event_id_of(subject: str, op: str, lsn: Any, entity_key: str, row_bytes: bytes | None) -> str:
    """A deterministic event id: the same change (re-sent by Debezium after a restart, or
    replayed by the bridge) always gets the same id. Snapshot rows share one LSN, so their
    content is part of the id too."""
    digest = hashlib.blake2b(row_bytes, digest_size=8).hexdigest() if row_bytes else ""
    # uuid_utils.uuid5 gives the standard library's uuid5, a tenth of its cost
    return str(uuid_utils.uuid5(_EVENT_NS, f"{subject}|{op}|{lsn}|{entity_key}|{digest}"))


@functools.lru_cache(maxsize=256)  # the changes of one batch share all but their own headers
def _shared_headers(subject: str, version: int, team: str, batch_ms: int) -> SharedHeaders:
    return SharedHeaders(subject, version, Source.CDC, team, batch_ms)


def translate(
    gov: TableGovernor, raw: bytes, key: bytes | None, topic: str, *, batch_ms: int, team: str
) -> Outbound:
    """The governed record of one change of ``topic`` (a raw Debezium topic), written under
    the version its row fits. Raises Undecodable, or TableHeld from the governor."""
    try:
        doc = orjson.loads(raw)
        if isinstance(doc, dict) and "payload" in doc and "schema" in doc:
            doc = doc["payload"]  # a worker with schemas.enable=true
        op = CdcOp(doc["op"])
        source = doc["source"]
        key_doc = orjson.loads(key) if key else None
        if isinstance(key_doc, dict) and "payload" in key_doc and "schema" in key_doc:
            key_doc = key_doc["payload"]
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
        raise Undecodable(f"not a Debezium change event ({exc})") from exc
    key_names = list(key_doc) if isinstance(key_doc, dict) else None
    row: dict[str, Any] | None
    if op is CdcOp.TRUNCATE:
        row, payload = None, {}
    elif op is CdcOp.DELETE:
        before = doc.get("before") or {}
        if gov.full_identity:
            row, payload = before, dict(before)
        else:  # only the key is real; other columns would be type defaults
            row = None
            payload = {k: before.get(k) for k in (key_names or gov.key_names)}
    else:
        row = doc.get("after")
        if not isinstance(row, dict):
            raise Undecodable(f"op {op.value} without an after image")
        payload = dict(row)
    schema = gov.schema_for(row, key_names)
    commit_ms = int(source.get("ts_ms") or doc.get("ts_ms") or batch_ms)
    payload[COMMIT_TIME_FIELD] = ms_to_iso(commit_ms)
    try:
        entity_key = entity_key_of(key_doc, key_names) if key_doc and key_names else ""
    except KeyError as exc:
        raise Undecodable(f"key column {exc} is null") from exc
    lsn = source.get("lsn")
    position = {"lsn": str(lsn)} if lsn is not None else {}
    if source.get("txId") is not None:
        position["txid"] = str(source["txId"])
    content = orjson.dumps(row) if op is CdcOp.READ and row else None
    event_id = event_id_of(gov.subject, op.value, lsn, entity_key, content)
    shared = _shared_headers(gov.subject, schema.version, team, batch_ms)
    return Outbound(
        topic=topic_for_subject(gov.subject),
        key=entity_key.encode() if entity_key else None,
        value=frame(schema.id, schema.encode(payload)),
        headers=cast(
            list[tuple[str, str | bytes | None]], shared.headers(event_id, commit_ms, op, position)
        ),
        table=topic,
        op=op.value,
        commit_ms=commit_ms,
    )
