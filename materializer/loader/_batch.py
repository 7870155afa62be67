"""What one load carries: the rows of one Kafka partition's offset range, column-wise."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "subject",
    "entity_key",
    "occurred_at",
    "ingested_at",
    "source",
    "producer",
    "op",
    "source_lsn",
    "source_txid",
    "schema_id",
    "schema_version",
    "payload_version",
    "payload",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)
DEAD_LETTER_COLUMNS: tuple[str, ...] = (
    "topic",
    "partition",
    "offset",
    "key",
    "value",
    "error",
    "at",
    "headers",
)
# Positions in a row: the partition key, and what identifies an event.
_OCCURRED_AT = EVENT_COLUMNS.index("occurred_at")
_EVENT_ID = EVENT_COLUMNS.index("event_id")
_SUBJECT = EVENT_COLUMNS.index("subject")
_INGESTED_AT = EVENT_COLUMNS.index("ingested_at")


def _month(ms: int) -> int:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.year * 100 + moment.month


def _empty_columns() -> list[list[Any]]:
    return [[] for _ in EVENT_COLUMNS]


@dataclass(slots=True)
class EventColumns:
    """Rows of ``events`` kept column-wise, one list per :data:`EVENT_COLUMNS` entry, as
    the insert takes them (no row objects: a load of 100,000 events holds 17 lists, not
    100,000 tuples for the garbage collector to walk). Times are UTC epoch milliseconds
    (clickhouse-connect writes ints to DateTime64(3) as they are); ``entity_key`` and
    ``payload`` are UTF-8 bytes, written as they are."""

    columns: list[list[Any]] = field(default_factory=_empty_columns)

    def __len__(self) -> int:
        return len(self.columns[0])

    def append(self, row: tuple[Any, ...]) -> None:
        for column, value in zip(self.columns, row, strict=True):
            column.append(value)

    def rows(self) -> list[tuple[Any, ...]]:
        """The rows as tuples in :data:`EVENT_COLUMNS` order."""
        return list(zip(*self.columns, strict=True))

    @property
    def subject(self) -> str | None:
        """The first row's subject (a load holds one partition, so one subject)."""
        return self.columns[_SUBJECT][0] if self.columns[0] else None

    def keep_first(self, stored: set[tuple[str, str]]) -> int:
        """Drop the rows whose ``(subject, event_id)`` is in ``stored`` (already in the
        log, or earlier in this load) and add the kept rows' ids to it: first write wins.
        Returns how many rows were dropped."""
        keep: list[int] = []
        ids = zip(self.columns[_SUBJECT], self.columns[_EVENT_ID], strict=True)
        for i, key in enumerate(ids):
            if key not in stored:
                stored.add(key)
                keep.append(i)
        dropped = len(self) - len(keep)
        if dropped:
            self.columns = [[column[i] for i in keep] for column in self.columns]
        return dropped

    def id_columns(self) -> list[list[Any]]:
        """The rows as ``event_ids`` columns: subject, event_id, ingested_at."""
        return [self.columns[_SUBJECT], self.columns[_EVENT_ID], self.columns[_INGESTED_AT]]

    def by_month(self) -> list[tuple[int, list[list[Any]]]]:
        """The columns, split by ``toYYYYMM(occurred_at)`` (the table's partition key) so
        each insert lands in exactly one partition and is deduplicated as one block."""
        if not self.columns[0]:
            return []
        times = self.columns[_OCCURRED_AT]
        first, last = _month(min(times)), _month(max(times))
        if first == last:
            return [(first, self.columns)]
        groups: dict[int, list[int]] = {}
        for i, t in enumerate(times):
            groups.setdefault(_month(t), []).append(i)
        return [
            (month, [[column[i] for i in rows] for column in self.columns])
            for month, rows in sorted(groups.items())
        ]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be loaded, with its position, raw bytes and the reason."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    error: str
    at_ms: int
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    def row(self) -> tuple[Any, ...]:
        return (
            self.topic,
            self.partition,
            self.offset,
            self.key,
            self.value,
            self.error,
            self.at_ms,
            encode_headers(self.headers),
        )


def encode_headers(headers: list[tuple[str, bytes]]) -> str:
    """Kafka headers as the ``dead_letters.headers`` text: JSON ``[[name, base64], ...]``."""
    return orjson.dumps([[k, base64.b64encode(v or b"").decode()] for k, v in headers]).decode()


def decode_headers(text: str) -> list[tuple[str, bytes]]:
    """The inverse of :func:`encode_headers` (no headers for rows stored before them)."""
    return [(str(k), base64.b64decode(v)) for k, v in orjson.loads(text)] if text else []


@dataclass(frozen=True, slots=True)
class Plan:
    """The boundaries of one load of a partition and the token it is inserted under.

    Recorded in ``materializer_batches`` before the load, so after a crash the same range
    is rebuilt and inserted under the same token, which ClickHouse drops if it landed."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    token: str

    @classmethod
    def for_range(cls, topic: str, partition: int, first: int, last: int) -> Plan:
        return cls(topic, partition, first, last, f"{topic}/{partition}/{first}-{last}")


@dataclass(slots=True)
class Batch:
    """One load: a partition's offset range, decoded into event rows and dead letters."""

    plan: Plan
    events: EventColumns
    dead_letters: list[DeadLetter]
    planned: bool = False  # the plan is already recorded (a replay after a restart)
    duplicates: int = 0  # events dropped because their id was already stored
