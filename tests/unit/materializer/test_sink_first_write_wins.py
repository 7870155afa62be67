"""First write wins in ClickHouseSink against real chDB: an id is stored once per subject,
the first copy wins, and the same id in another subject is another event."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from materializer.loader import ClickHouseSink
from materializer.loader._batch import Batch, EventColumns, Plan
from migrations import apply_clickhouse_migrations
from sluicegate.clickhouse import connect

TOPIC = "sg.orders"


def _load(first: int, rows: list[tuple[str, str, int]]) -> Batch:
    """A load at offsets ``first``.. of (subject, event_id, ingested_at ms) rows."""
    plan = Plan.for_range(TOPIC, 0, first, first + len(rows) - 1)
    batch = Batch(plan, EventColumns(), [])
    for i, (subject, event_id, ingested) in enumerate(rows):
        batch.events.append(
            (event_id, subject, b"k", 1_700_000_000_000, ingested, "http", "", "", None, None,
             1, 1, 1, b"{}", TOPIC, 0, first + i)
        )  # fmt: skip
    return batch


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    c = connect(None, tmp_path)
    apply_clickhouse_migrations(c)
    yield c
    c.close()


def _stored(client: Client) -> list[tuple[str, str, int, int]]:
    return sorted(
        client.query(
            "SELECT subject, event_id, count(), min(toUnixTimestamp64Milli(ingested_at)) "
            "FROM events GROUP BY subject, event_id"
        ).result_rows
    )


def test_an_id_is_stored_once_per_subject_and_the_first_copy_wins(client: Client) -> None:
    sink = ClickHouseSink(client)
    sink.write([_load(0, [("s.one", "a", 1_000), ("s.one", "b", 1_000), ("s.one", "a", 1_500)])])
    again = _load(10, [("s.one", "a", 2_000), ("s.one", "c", 2_000), ("s.two", "a", 2_000)])
    sink.write([again])
    assert again.duplicates == 1
    assert _stored(client) == [
        ("s.one", "a", 1, 1_000),
        ("s.one", "b", 1, 1_000),
        ("s.one", "c", 1, 2_000),
        ("s.two", "a", 1, 2_000),
    ]


def test_the_same_id_in_another_subject_is_another_event(client: Client) -> None:
    sink = ClickHouseSink(client)
    sink.write([_load(0, [("s.one", "x", 1_000)])])
    sink.write([_load(10, [("s.two", "x", 1_000)]), _load(20, [("s.three", "x", 1_000)])])
    assert [row[0] for row in _stored(client)] == ["s.one", "s.three", "s.two"]
