"""Kafka record -> an ``events`` row (decoded by schema id, upcast to the subject's latest
version) or a dead letter naming why it cannot be loaded."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any, Protocol

import orjson

from materializer.loader._batch import DeadLetter, EventColumns
from sluicegate import envelope
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
    return int(text) if text is not None and text.isdigit() else None


def _json_default(value: Any) -> Any:
    # Avro logical types and bytes that orjson does not serialize by itself.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


class RecordDecoder:
    """Decodes records for one load. Schemas are cached by id (they never change);
    the subject's latest version is looked up once per decoder, i.e. once per load."""

    def __init__(self, registry: SchemaSource, schemas: dict[int, Schema]) -> None:
        self._registry = registry
        self._schemas = schemas
        self._latest: dict[str, int] = {}
        self._subjects: dict[str, str] = {}

    def _schema(self, schema_id: int) -> Schema:
        schema = self._schemas.get(schema_id)
        if schema is None:
            try:
                schema = self._registry.schema_by_id(schema_id)
            except NotFound as exc:
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
                body.decode()  # already the JSON text of this very payload
                if schema.schema_type == "JSON"
                else orjson.dumps(payload, default=_json_default).decode()
            )
        else:
            try:
                version, upcast = self._registry.upcast(subject, env.schema_version, payload)
            except (Unavailable, Poison):
                raise
            except Exception as exc:
                raise Poison(f"migration from version {env.schema_version} failed: {exc}") from exc
            text = orjson.dumps(upcast, default=_json_default).decode()
        return (
            *env[:7],  # event_id .. producer: the events table's leading columns
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
