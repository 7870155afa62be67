"""Time buckets in SQL agree with the window arithmetic done in Python (floor division),
before 1970 too: features and training sets place an event in the same bucket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest

from materializer.features.sql import floor_div_sql


@pytest.fixture(scope="module")
def chdb(chdb_path: Path) -> Iterator[Any]:
    client = clickhouse_connect.get_client(interface="chdb", path=str(chdb_path))
    yield client
    client.close()


def test_buckets_floor_like_python_on_both_sides_of_1970(chdb: Any) -> None:
    values = [-86_400_001, -86_400_000, -86_399_999, -1, 0, 1, 59_999, 60_000, 1_700_000_000_123]
    for size in (60_000, 86_400_000):
        rows = chdb.query(
            f"SELECT x, {floor_div_sql('x', size)} FROM "
            f"(SELECT arrayJoin({values}) :: Int64 AS x) ORDER BY x"
        ).result_rows
        assert [(int(x), int(b)) for x, b in rows] == [(v, v // size) for v in sorted(values)]
