"""Kafka record -> an ``events`` row (decoded by schema id, upcast to the subject's latest
version) or a dead letter naming why it cannot be loaded."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Protocol

import orjson

from materializer.loader._batch import EVENT_COLUMNS, DeadLetter, EventColumns
from sluicegate import envelope
from sluicegate.envelope import (
    H_ID,
    H_INGESTED_AT,
    H_LSN,
    H_OP,
    H_PRODUCER,
    H_SCHEMA_VERSION,
    H_SOURCE_KIND,
    H_TIME,
    H_TXID,
    H_TYPE,
)
from sluicegate.errors import NotFound, Unavailable
from sluicegate.naming import subject_for_topic


class Schema(Protocol):
    """The part of ``registry.RegisteredSchema`` the materializer uses."""

    @property
    def version(self) -> int: ...
    @property
    def schema_type(self) -> str: ...
    def decode(self, body: bytes) -> dict[str, Any]: ...


class SchemaSource(Protocol):
    """The part of ``registry.Registry`` the materializer uses."""

    def schema_by_id(self, schema_id: int) -> Schema: ...
    def latest(self, subject: str) -> Schema: ...
    def upcast(
        self, subject: str, from_version: int, payload: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]: ...


class Record(Protocol):
    """The part of ``confluent_kafka.Message`` the decoder reads."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...


class Poison(Exception):
    """A record that can never be loaded; the message is the dead letter's reason."""


def _position(text: str | None) -> int | None:
    """A CDC source position (LSN, transaction id) as a number; None for http events or a
    value that is not one."""
    return int(text) if text is not None and text.isascii() and text.isdigit() else None


_OCCURRED_AT = EVENT_COLUMNS.index("occurred_at")
_INGESTED_AT = EVENT_COLUMNS.index("ingested_at")


def _low_cardinality(
    kind: bytes | None, op: bytes | None, producer: bytes | None
) -> tuple[str, str, str]:
    """(source, op, producer) column values of the headers' ``ce_sourcekind``, ``ce_op``
    and ``ce_producer``: a load has few distinct ones, each decoded once."""
    return (
        envelope.source_of(kind).value,
        str(envelope.op_of(op) or ""),
        producer.decode() if producer is not None else "",
    )


def _header_position(value: bytes | None) -> int | None:
    """:func:`_position` of a raw header (which, like every header, must be UTF-8)."""
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    return _position(value.decode())


def _json_default(value: Any) -> Any:
    # Avro logical types and bytes that orjson does not serialize by itself.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


class RecordDecoder:
    """Decodes records for one load. Schemas are cached by id (they never change);
    the subject's latest version, and whether an unknown id or subject is still unknown,
    are looked up once per decoder, i.e. once per load: a topic full of records nobody
    registered is dead-lettered at the speed of the decode, not of the registry."""

    def __init__(self, registry: SchemaSource, schemas: dict[int, Schema]) -> None:
        self._registry = registry
        self._schemas = schemas
        self._latest: dict[str, int] = {}
        self._subjects: dict[str, str] = {}
        self._unknown: set[int] = set()  # ids the registry does not have, for this load

    def _schema(self, schema_id: int) -> Schema:
        schema = self._schemas.get(schema_id)
        if schema is None:
            if schema_id in self._unknown:  # one registry lookup per id and load
                raise Poison(f"unknown schema id {schema_id}")
            try:
                schema = self._registry.schema_by_id(schema_id)
            except NotFound as exc:
                self._unknown.add(schema_id)
                raise Poison(f"unknown schema id {schema_id}") from exc
            except Unavailable:
                raise
            except Exception as exc:  # the registry failing is no reason to dead-letter
                raise Unavailable(f"registry lookup of schema id {schema_id}: {exc}") from exc
            self._schemas[schema_id] = schema
        return schema

    def _latest_version(self, subject: str) -> int:
        version = self._latest.get(subject)
        if version is None:
            try:
                version = self._registry.latest(subject).version
            except NotFound:
                version = 0  # remembered for this load: one registry lookup per subject
            except Unavailable:
                raise
            except Exception as exc:  # the registry failing is no reason to dead-letter
                raise Unavailable(f"registry lookup of subject {subject!r}: {exc}") from exc
            self._latest[subject] = version
        if not version:
            raise Poison(f"subject {subject!r} is not registered")
        return version

    def add(self, record: Record, rows: EventColumns, dead: list[DeadLetter], now_ms: int) -> None:
        """Decode ``record`` into ``rows``, or into ``dead`` when it is poison.

        Raises :class:`sluicegate.errors.Unavailable` when the registry cannot answer
        (the caller retries the load later; nothing is dead-lettered for that)."""
        try:
            rows.append(self._row(record))
        except Poison as exc:
            dead.append(self._dead(record, str(exc), now_ms))
        except Unavailable:
            raise
        except Exception as exc:  # anything else a malformed record provokes is poison too
            dead.append(self._dead(record, f"{type(exc).__name__}: {exc}", now_ms))

    @staticmethod
    def _dead(record: Record, error: str, now_ms: int) -> DeadLetter:
        return DeadLetter(
            topic=record.topic() or "",
            partition=record.partition() or 0,
            offset=record.offset() or 0,
            key=record.key() or b"",
            value=record.value() or b"",
            error=error,
            at_ms=now_ms,
            headers=list(record.headers() or []),
        )

    def _row(self, record: Record) -> tuple[Any, ...]:
        topic = record.topic() or ""
        subject = self._subjects.get(topic)
        if subject is None:
            subject = self._subjects[topic] = subject_for_topic(topic)
        value = record.value()
        if value is None:
            raise Poison("no value (a tombstone): governed topics carry every event as a value")
        try:
            schema_id, body = envelope.unframe(value)
        except ValueError as exc:
            raise Poison(str(exc)) from exc
        schema = self._schema(schema_id)
        try:
            payload = schema.decode(body)
        except Exception as exc:
            raise Poison(f"undecodable under schema id {schema_id}: {exc}") from exc
        try:
            env = envelope.read_headers(record.key(), record.headers())
        except KeyError as exc:
            raise Poison(f"missing CloudEvents header {exc.args[0]}") from exc
        except ValueError as exc:
            raise Poison(f"bad CloudEvents header: {exc}") from exc
        if env.subject != subject:
            raise Poison(f"ce_type {env.subject!r} does not match the topic's subject {subject!r}")
        latest = self._latest_version(subject)
        if env.schema_version == latest:
            version = latest
            text = (
                body  # already the JSON text of this very payload
                if schema.schema_type == "JSON"
                else orjson.dumps(payload, default=_json_default)
            )
        else:
            try:
                version, upcast = self._registry.upcast(subject, env.schema_version, payload)
            except (Unavailable, Poison):
                raise
            except Exception as exc:
                raise Poison(f"migration from version {env.schema_version} failed: {exc}") from exc
            text = orjson.dumps(upcast, default=_json_default)
        return (
            env.event_id,
            env.subject,
            record.key() or b"",
            *env[3:7],  # occurred_at .. producer: the events table's leading columns
            env.op or "",
            _position(env.lsn),
            _position(env.txid),
            schema_id,
            env.schema_version,
            version,
            text,
            topic,
            record.partition(),
            record.offset(),
        )

    # ---- the load path ----------------------------------------------------------------

    def add_load(
        self, records: Sequence[Record], rows: EventColumns, dead: list[DeadLetter], now_ms: int
    ) -> None:
        """Decode one partition's ``records`` into ``rows`` (in order) and ``dead``, as
        :meth:`add` would record by record.

        The usual record (framed JSON of its subject's latest version, the envelope's
        headers present) is read by a loop that only moves bytes into columns; its time
        headers are parsed column-wise after the loop. Any other record takes
        :meth:`add`'s path; so does the whole load when a time header is not a time."""
        if not records:
            return
        mark, dead_mark = len(rows), len(dead)
        topic = records[0].topic() or ""
        subject = self._subjects.get(topic) or self._subjects.setdefault(
            topic, subject_for_topic(topic)
        )
        subject_b = subject.encode()
        partition = records[0].partition()
        fast: dict[tuple[bytes, bytes | None], tuple[int, int] | None] = {}
        lows: dict[tuple[bytes | None, bytes | None, bytes | None], tuple[str, str, str]] = {}
        occurred, ingested = rows.columns[_OCCURRED_AT], rows.columns[_INGESTED_AT]
        slow = 0
        (a_id, a_subject, a_key, a_occurred, a_ingested, a_source, a_producer, a_op, a_lsn,
         a_txid, a_schema, a_version, a_payload_version, a_payload, a_topic, a_partition,
         a_offset) = [column.append for column in rows.columns]  # fmt: skip
        for record in records:
            h = dict(record.headers() or ())
            value = record.value() or b""
            form = (value[:5], h.get(H_SCHEMA_VERSION))  # wire frame, version header
            if form in fast:
                plan = fast[form]
            else:
                plan = fast[form] = self._fast_plan(subject, *form)
            event_id, occurred_at, ingested_at = h.get(H_ID), h.get(H_TIME), h.get(H_INGESTED_AT)
            if (
                plan is None
                or event_id is None
                or occurred_at is None
                or ingested_at is None
                or h.get(H_TYPE) != subject_b
            ):
                slow += 1
                self.add(record, rows, dead, now_ms)
                continue
            body = value[5:]
            try:
                orjson.loads(body)  # a JSON payload must parse: the check add() makes
                low = (h.get(H_SOURCE_KIND), h.get(H_OP), h.get(H_PRODUCER))
                kind_op_producer = lows.get(low) or lows.setdefault(low, _low_cardinality(*low))
                lsn, txid = _header_position(h.get(H_LSN)), _header_position(h.get(H_TXID))
                event_id_s = event_id.decode()
                key = record.key() or b""
                key.decode()  # an entity key must be UTF-8 text, as add() checks
            except Exception:
                slow += 1
                self.add(record, rows, dead, now_ms)  # dead-letters it with the reason
                continue
            schema_id, version = plan
            a_id(event_id_s)
            a_subject(subject)
            a_key(key)
            a_occurred(occurred_at)
            a_ingested(ingested_at)
            a_source(kind_op_producer[0])
            a_producer(kind_op_producer[2])
            a_op(kind_op_producer[1])
            a_lsn(lsn)
            a_txid(txid)
            a_schema(schema_id)
            a_version(version)
            a_payload_version(version)
            a_payload(body)
            a_topic(topic)
            a_partition(partition)
            a_offset(record.offset())
        try:
            for column in (occurred, ingested):
                times = column[mark:]
                if slow:  # the rows add() decoded hold their times already
                    at = [i for i, v in enumerate(times) if not isinstance(v, int)]
                    parsed = envelope.header_ms_column([times[i] for i in at])
                    for i, ms in zip(at, parsed, strict=True):
                        times[i] = ms
                else:
                    times = envelope.header_ms_column(times)
                column[mark:] = times
        except ValueError:
            # a time header that is not a time: read the load record by record, so that
            # record alone is dead-lettered with the reason
            for column in rows.columns:
                del column[mark:]
            del dead[dead_mark:]
            for record in records:
                self.add(record, rows, dead, now_ms)

    def _fast_plan(
        self, subject: str, frame: bytes, version: bytes | None
    ) -> tuple[int, int] | None:
        """(schema id, version) when records framed ``frame`` with ``ce_schemaversion``
        ``version`` are JSON of the subject's latest version, stored as they are; else None."""
        if version is None:
            return None
        try:
            schema_id, _ = envelope.unframe(frame)
            schema = self._schema(schema_id)
            latest = self._latest_version(subject)
        except (ValueError, Poison):
            return None  # add() dead-letters each such record with the reason
        if schema.schema_type != "JSON" or not version.isdigit() or int(version) != latest:
            return None
        return schema_id, latest
