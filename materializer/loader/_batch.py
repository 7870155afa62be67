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


@dataclass(slots=True)
class EventColumns:
    """Rows of ``events`` as tuples in :data:`EVENT_COLUMNS` order, turned column-wise for
    the insert; times are UTC epoch milliseconds (clickhouse-connect writes ints to
    DateTime64(3) as they are)."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def append(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)

    def ids(self) -> list[tuple[str, str]]:
        """``(subject, event_id)`` of every row, in row order."""
        return [(row[_SUBJECT], row[_EVENT_ID]) for row in self.rows]

    def keep_first(self, stored: set[tuple[str, str]]) -> int:
        """Drop the rows whose ``(subject, event_id)`` is in ``stored`` (already in the
        log, or earlier in this load) and add the kept rows' ids to it: first write wins.
        Returns how many rows were dropped."""
        kept: list[tuple[Any, ...]] = []
        for row in self.rows:
            key = (row[_SUBJECT], row[_EVENT_ID])
            if key not in stored:
                stored.add(key)
                kept.append(row)
        dropped = len(self.rows) - len(kept)
        self.rows = kept
        return dropped

    def id_columns(self) -> list[list[Any]]:
        """The rows as ``event_ids`` columns: subject, event_id, ingested_at."""
        return [
            [r[_SUBJECT] for r in self.rows],
            [r[_EVENT_ID] for r in self.rows],
            [r[_INGESTED_AT] for r in self.rows],
        ]

    def by_month(self) -> list[tuple[int, list[tuple[Any, ...]]]]:
        """The columns, split by ``toYYYYMM(occurred_at)`` (the table's partition key) so
        each insert lands in exactly one partition and is deduplicated as one block."""
        if not self.rows:
            return []
        columns = list(zip(*self.rows, strict=True))
        times = columns[_OCCURRED_AT]
        first, last = _month(min(times)), _month(max(times))
        if first == last:
            return [(first, columns)]
        groups: dict[int, list[tuple[Any, ...]]] = {}
        for row in self.rows:
            groups.setdefault(_month(row[_OCCURRED_AT]), []).append(row)
        return [(month, list(zip(*rows, strict=True))) for month, rows in sorted(groups.items())]


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
