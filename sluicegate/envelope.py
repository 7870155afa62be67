"""The event envelope, shared by the gateway, the CDC bridge and the materializer.

On Kafka an envelope travels the way the ecosystem expects, so any consumer can read our
topics without our code:

- record key: the entity key (UTF-8), so one entity's events stay ordered in a partition;
- record value: the payload alone in the Confluent wire format
  (magic byte 0, 4-byte big-endian schema id, Avro binary or UTF-8 JSON);
- headers: CloudEvents Kafka protocol binding, binary mode (``ce_specversion``, ``ce_id``,
  ``ce_type``, ``ce_source``, ``ce_time``) plus extensions for the rest of the envelope.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

import pyarrow as pa
import uuid_utils

MAGIC_BYTE = 0
_MS_UTC = pa.timestamp("ms", "UTC")
_WIRE_HEADER = struct.Struct(">bI")


class Source(StrEnum):
    HTTP = "http"
    CDC = "cdc"


class CdcOp(StrEnum):
    """Debezium's operation codes."""

    READ = "r"  # snapshot row
    CREATE = "c"
    UPDATE = "u"
    DELETE = "d"
    TRUNCATE = "t"


_SOURCES = {s.value.encode(): s for s in Source}
_OPS = {o.value.encode(): o for o in CdcOp}
_OP_BYTES = {o: o.value.encode() for o in CdcOp}

# CloudEvents attributes (ce_*) and Sluicegate's extensions (lower-case alphanumerics only,
# as the CloudEvents spec requires of extension names).
H_SPECVERSION = "ce_specversion"
H_ID = "ce_id"
H_TYPE = "ce_type"
H_SOURCE = "ce_source"
H_TIME = "ce_time"
H_CONTENT_TYPE = "content-type"
H_INGESTED_AT = "ce_ingestedat"
H_PRODUCER = "ce_producer"
H_SCHEMA_VERSION = "ce_schemaversion"
H_SOURCE_KIND = "ce_sourcekind"
H_OP = "ce_op"
H_LSN = "ce_lsn"
H_TXID = "ce_txid"


def new_event_id() -> str:
    """A time-ordered UUIDv7, as text."""
    return str(uuid_utils.uuid7())


def now_ms() -> int:
    """The current UTC time in epoch milliseconds."""
    return int(datetime.now(UTC).timestamp() * 1000)


@functools.lru_cache(maxsize=65536)  # the hot path formats the same instants again and again
def ms_to_iso(ms: int) -> str:
    """Epoch milliseconds -> RFC 3339 UTC text with millisecond precision."""
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def iso_to_ms(text: str) -> int:
    """RFC 3339 text (with a zone, or naive meaning UTC) -> epoch milliseconds."""
    try:
        parsed = datetime.fromisoformat(text)  # reads a trailing "Z" itself since 3.11
    except ValueError:
        parsed = datetime.fromisoformat(text.replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


@functools.lru_cache(maxsize=65536)  # a batch's events share their ingestion instant
def _header_ms(value: bytes) -> int:
    return iso_to_ms(value.decode())


def header_ms_column(values: Sequence[bytes]) -> list[int]:
    """Many time headers -> epoch milliseconds, parsed column-wise (Arrow reads the RFC 3339
    forms with a zone and at most millisecond digits that the gateway and the CDC bridge
    write, to the same value :func:`iso_to_ms` gives); any other form is read one by one
    by :func:`iso_to_ms`. Raises ValueError for a value that is not a time."""
    try:
        parsed = pa.array(values, pa.binary()).cast(pa.string()).cast(_MS_UTC)
        return parsed.cast(pa.int64()).to_pylist()  # type: ignore[no-any-return]
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return [_header_ms(v) for v in values]


def source_of(kind: bytes | None) -> Source:
    """The ``ce_sourcekind`` header's value (absent: an HTTP event)."""
    return (_SOURCES.get(kind) or Source(kind.decode())) if kind else Source.HTTP


def op_of(op: bytes | None) -> CdcOp | None:
    """The ``ce_op`` header's value (absent: not a change)."""
    return (_OPS.get(op) or CdcOp(op.decode())) if op else None


def frame(schema_id: int, body: bytes) -> bytes:
    """Wrap a serialized payload in the Confluent wire format."""
    return _WIRE_HEADER.pack(MAGIC_BYTE, schema_id) + body


def unframe(value: bytes) -> tuple[int, bytes]:
    """Split a Confluent wire-format value into (schema id, body); ValueError if not framed."""
    if len(value) < _WIRE_HEADER.size or value[0] != MAGIC_BYTE:
        raise ValueError("not in the Confluent wire format (magic byte 0 + 4-byte schema id)")
    return int.from_bytes(value[1:5], "big"), value[5:]


def entity_key_of(payload: dict[str, Any], fields: list[str]) -> str:
    """The entity key of a payload: the named field's value as text; several fields are
    joined with ``|`` in the order given. Raises KeyError naming the first missing field."""
    parts = []
    for name in fields:
        value: Any = payload
        for step in name.split("."):
            if not isinstance(value, dict) or step not in value or value[step] is None:
                raise KeyError(name)
            value = value[step]
        parts.append(
            value
            if isinstance(value, str)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )
    return "|".join(parts)


class SharedHeaders:
    """The headers the events of one request share (subject, schema version, source,
    producer, ingestion instant), encoded once; :meth:`headers` adds the event's own id and
    time. The gateway builds one per request instead of one envelope object per event."""

    __slots__ = ("_head", "_tail", "ingested_at", "producer")

    def __init__(
        self, subject: str, schema_version: int, source: Source, producer: str, ingested_at: int
    ) -> None:
        kind = source.value
        self.producer = producer
        self.ingested_at = ingested_at
        self._head = (
            (H_SPECVERSION, b"1.0"),
            (H_TYPE, subject.encode()),
            (H_SOURCE, f"/sluicegate/{kind}/{producer}".encode()),
        )
        self._tail = (
            (H_INGESTED_AT, ms_to_iso(ingested_at).encode()),
            (H_PRODUCER, producer.encode()),
            (H_SCHEMA_VERSION, str(schema_version).encode()),
            (H_SOURCE_KIND, kind.encode()),
        )

    def headers(
        self,
        event_id: str,
        occurred_at: int,
        op: CdcOp | None = None,
        position: dict[str, str] | None = None,
    ) -> list[tuple[str, bytes]]:
        """One event's headers, in the order :meth:`Envelope.headers` gives them; a change
        (``op``) adds its operation and source position (``lsn``, ``txid``)."""
        spec, kind, source = self._head
        out = [
            spec,
            (H_ID, event_id.encode()),
            kind,
            source,
            (H_TIME, ms_to_iso(occurred_at).encode()),
            *self._tail,
        ]
        if op is not None:
            out.append((H_OP, _OP_BYTES[op]))
        if position:
            if "lsn" in position:
                out.append((H_LSN, position["lsn"].encode()))
            if "txid" in position:
                out.append((H_TXID, position["txid"].encode()))
        return out


@dataclass(slots=True)
class Envelope:
    """One governed event. Times are UTC epoch milliseconds."""

    event_id: str
    subject: str
    schema_id: int
    schema_version: int
    entity_key: str
    occurred_at: int
    ingested_at: int
    source: Source
    producer: str
    payload: dict[str, Any] | None
    op: CdcOp | None = None
    position: dict[str, str] = field(default_factory=dict)  # CDC: lsn, txid

    def headers(self) -> list[tuple[str, bytes]]:
        """The CloudEvents (binary mode) headers of this envelope."""
        return SharedHeaders(
            self.subject, self.schema_version, self.source, self.producer, self.ingested_at
        ).headers(self.event_id, self.occurred_at, self.op, self.position)

    @classmethod
    def from_record(
        cls,
        key: bytes | None,
        headers: list[tuple[str, bytes]] | None,
        schema_id: int,
        payload: dict[str, Any] | None,
    ) -> Envelope:
        """Rebuild an envelope from a consumed record (already-decoded payload).
        Raises KeyError naming a missing required header, ValueError for a bad value."""
        f = read_headers(key, headers)
        position = {
            name: text for name, text in (("lsn", f.lsn), ("txid", f.txid)) if text is not None
        }
        return cls(
            event_id=f.event_id,
            subject=f.subject,
            schema_id=schema_id,
            schema_version=f.schema_version,
            entity_key=f.entity_key,
            occurred_at=f.occurred_at,
            ingested_at=f.ingested_at,
            source=f.source,
            producer=f.producer,
            payload=payload,
            op=f.op,
            position=position,
        )


class RecordHeaders(NamedTuple):
    """The envelope fields a consumed record carries in its key and headers, in the
    order of the ``events`` table's leading columns."""

    event_id: str
    subject: str
    entity_key: str
    occurred_at: int
    ingested_at: int
    source: Source
    producer: str
    op: CdcOp | None
    lsn: str | None
    txid: str | None
    schema_version: int


def read_headers(key: bytes | None, headers: list[tuple[str, bytes]] | None) -> RecordHeaders:
    """The envelope fields of a consumed record, read from its key and CloudEvents headers
    (the materializer's hot path: once per record, only the headers used are decoded).
    Raises KeyError naming a missing required header, ValueError for a bad value."""
    h: dict[str, bytes | None] = dict(headers) if headers else {}
    kind, op, producer = h.get(H_SOURCE_KIND), h.get(H_OP), h.get(H_PRODUCER)
    lsn, txid = h.get(H_LSN), h.get(H_TXID)
    return RecordHeaders(
        _required(h, H_ID).decode(),
        _required(h, H_TYPE).decode(),
        key.decode() if key else "",
        _header_ms(_required(h, H_TIME)),
        _header_ms(_required(h, H_INGESTED_AT)),
        source_of(kind),
        producer.decode() if producer is not None else "",
        op_of(op),
        lsn.decode() if lsn is not None else None,
        txid.decode() if txid is not None else None,
        int(_required(h, H_SCHEMA_VERSION)),
    )


def _required(headers: dict[str, bytes | None], name: str) -> bytes:
    value = headers.get(name)
    if value is None:
        raise KeyError(name)
    return value
