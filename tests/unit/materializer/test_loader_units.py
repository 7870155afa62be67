"""Small pure pieces of the loader: the subscription pattern, month split, SQL values,
migration files."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest

import materializer.loader
from materializer.loader._batch import EVENT_COLUMNS, EventColumns
from materializer.loader._sql import json_value
from migrations import Migration, clickhouse_migrations
from sluicegate.errors import MigrationFailed
from sluicegate.naming import GOVERNED_TOPIC_PATTERN, governed_topic_subscription

TOPICS = [
    "sg.rejected",
    "sg.rejected2",
    "sg.rejecte",
    "sg.r",
    "sg.reddit.upvote",
    "sg.x",
    "sg.cdc.app.users",
    "sg.",
    "sg.rejectedx.y",
    "sgx.a",
    "other",
    "sg.Rejected",
]


def test_subscription_regex_selects_exactly_the_governed_topics() -> None:
    ours = re.compile(governed_topic_subscription())
    reference = re.compile(GOVERNED_TOPIC_PATTERN)
    for topic in TOPICS:
        assert bool(ours.match(topic)) == bool(reference.match(topic)), topic
    assert "(?" not in governed_topic_subscription()  # librdkafka has no lookaround


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_rows_split_by_month_partition() -> None:
    cols = EventColumns()
    at = EVENT_COLUMNS.index("occurred_at")
    for i, t in enumerate([ms(2024, 1, 31, 23), ms(2024, 2, 1), ms(2024, 1, 2)]):
        row = [0] * len(EVENT_COLUMNS)
        row[0], row[at] = f"e{i}", t
        cols.append(tuple(row))
    parts = cols.by_month()
    assert [(month, list(c[0])) for month, c in parts] == [(202401, ["e0", "e2"]), (202402, ["e1"])]
    single = EventColumns([column[:1] for column in cols.columns])
    ((month, columns),) = single.by_month()
    assert month == 202401 and columns == [[v] for v in cols.rows()[0]]
    assert EventColumns().by_month() == []


def test_first_write_wins_within_a_load_and_against_the_log() -> None:
    cols = EventColumns()
    for i, event_id in enumerate(["a", "b", "a", "c", "b"]):
        row = [0] * len(EVENT_COLUMNS)
        row[0], row[1], row[-1] = event_id, "s", i
        cols.append(tuple(row))
    stored = {("s", "c")}
    assert cols.keep_first(stored) == 3
    assert [(r[0], r[-1]) for r in cols.rows()] == [("a", 0), ("b", 1)]
    assert stored == {("s", "a"), ("s", "b"), ("s", "c")}


def test_sql_values_are_json_ready() -> None:
    assert json_value(datetime(2024, 1, 2, 3, 4, 5, 6000)) == "2024-01-02T03:04:05.006Z"
    assert json_value(datetime(2024, 1, 2, tzinfo=UTC)) == "2024-01-02T00:00:00.000Z"
    assert json_value(date(2024, 1, 2)) == "2024-01-02"
    assert json_value(Decimal("1.50")) == "1.50"
    assert json_value(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert json_value(b"\xff\x00") == "/wA="
    assert json_value({"a": [1, (2, None)]}) == {"a": [1, [2, None]]}


def test_shipped_migrations_are_numbered_and_split_into_statements() -> None:
    found = clickhouse_migrations()
    names = [m.name for m in found]
    assert names[:4] == [
        "0001_events.sql",
        "0002_dead_letters.sql",
        "0003_materializer_batches.sql",
        "0004_store.sql",
    ]
    assert names == sorted(names)
    store = next(m for m in found if m.name == "0004_store.sql")
    statements = store.statements()
    assert len(statements) == 2 and statements[1].startswith("INSERT INTO store")
    assert all("--" not in s for s in statements)


def test_checksum_follows_the_text() -> None:
    a, b = Migration("0001_a.sql", "SELECT 1;"), Migration("0001_a.sql", "SELECT 2;")
    assert a.checksum != b.checksum and len(a.checksum) == 64


def test_badly_named_migration_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_ok.sql").write_text("SELECT 1;")
    (tmp_path / "2_bad.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationFailed, match=r"2_bad\.sql"):
        clickhouse_migrations(tmp_path)


def test_public_api_is_pinned() -> None:
    assert sorted(materializer.loader.__all__) == [
        "ClickHouseSink",
        "DEAD_LETTER_COLUMNS",
        "EVENT_COLUMNS",
        "LoaderMetrics",
        "MAX_RESULT_ROWS",
        "Materializer",
        "MaterializerConfig",
        "ReadOnlySql",
        "RejectionsLoader",
        "ReplayLog",
        "SqlResult",
        "group_id",
        "router",
        "start_materializer",
        "store_id",
    ]
