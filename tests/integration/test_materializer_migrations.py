"""Numbered ClickHouse DDL: applied once, recorded with checksums, an edited applied file
refused by name; `sluicegate migrate` on a data directory, twice."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.mz_support import Harness

ROOT = Path(__file__).resolve().parents[2]


def test_applied_once_and_edits_refused(tmp_path: Path, stack: Any) -> None:
    ddl = tmp_path / "ddl"
    ddl.mkdir()
    (ddl / "0001_first.sql").write_text(
        "-- a table\nCREATE TABLE IF NOT EXISTS t_first (a UInt8) ENGINE = MergeTree ORDER BY a;\n"
        "INSERT INTO t_first VALUES (1);\n"
    )
    h = Harness(tmp_path / "store", stack.kafka_bootstrap)
    try:
        assert h("migrate", dir=str(ddl)) == ["0001_first.sql"]
        assert h("migrate", dir=str(ddl)) == []  # a no-op: the INSERT did not run again
        assert h("sql", query="SELECT count() FROM t_first") == [[1]]
        (ddl / "0002_second.sql").write_text(
            "CREATE TABLE IF NOT EXISTS t_second (b String) ENGINE = MergeTree ORDER BY b;"
        )
        assert h("migrate", dir=str(ddl)) == ["0002_second.sql"]
        recorded = h(
            "sql",
            query="SELECT name, length(checksum) FROM schema_migrations "
            "WHERE name LIKE '000%\\_%s%' ORDER BY name",
        )
        assert ["0001_first.sql", 64] in recorded and ["0002_second.sql", 64] in recorded

        (ddl / "0001_first.sql").write_text(
            "CREATE TABLE IF NOT EXISTS t_first (a UInt16) ENGINE = MergeTree ORDER BY a;\n"
        )
        with pytest.raises(RuntimeError, match=r"0001_first\.sql: the file changed"):
            h("migrate", dir=str(ddl))
        (ddl / "0003_broken.sql").write_text("CREATE TABLE nonsense (;\n")
        (ddl / "0001_first.sql").unlink()
        with pytest.raises(RuntimeError, match=r"0003_broken\.sql"):
            h("migrate", dir=str(ddl))
    finally:
        h.close()


def test_sluicegate_migrate_twice(tmp_path: Path) -> None:
    env = {**os.environ, "SLUICEGATE_DATA_DIR": str(tmp_path / "sg"), "TZ": "UTC"}
    env.pop("SLUICEGATE_ADMIN_TOKEN", None)

    def migrate() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROOT / ".venv" / "bin" / "sluicegate"), "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first = migrate()
    assert first.returncode == 0, first.stderr
    assert "clickhouse: applied 0001_events.sql" in first.stdout
    second = migrate()
    assert second.returncode == 0, second.stderr
    assert "clickhouse: 0 migration(s) applied" in second.stdout
