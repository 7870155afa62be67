"""A shortened `sluicegate demo` runs end to end, and what it prints matches what
ClickHouse holds afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

COUNT_SCRIPT = """
import json, sys
from pathlib import Path
from sluicegate.clickhouse import READ_SETTINGS, connect
c = connect(None, Path(sys.argv[1]))
q = lambda sql: c.query(sql, settings=READ_SETTINGS).result_rows
print(json.dumps({
    "http": q("SELECT count() FROM events WHERE source = 'http'")[0][0],
    "cdc": q("SELECT count() FROM events WHERE source = 'cdc'")[0][0],
    "by_subject": dict(q("SELECT subject, count() FROM events GROUP BY subject")),
    "v2_payload_versions": [r[0] for r in q("SELECT DISTINCT payload_version FROM events WHERE subject = 'reddit.upvoted' AND schema_version = 2")],
}))
"""


def test_short_demo_numbers_match_clickhouse(stack, tmp_path: Path) -> None:
    out, data = tmp_path / "out", tmp_path / "run"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "sluicegate",
            "demo",
            "--events",
            "3000",
            "--users",
            "150",
            "--posts",
            "200",
            "--days",
            "10",
            "--out",
            str(out),
            "--data-dir",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,  # the assertion below shows the output
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Summary" in run.stdout
    summary = json.loads((out / "summary.json").read_text())

    # the demo stopped its server, so the store can be opened here (in a child process)
    counted = json.loads(
        subprocess.run(
            [sys.executable, "-c", COUNT_SCRIPT, str(data / "sg")],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
    )
    # the freshness probes post a few upvotes after the workload
    probes = summary["freshness_ms"].get("probes", 0)
    assert counted["http"] == summary["events_accepted"] + probes
    assert counted["cdc"] == summary["cdc_changes"]
    assert summary["events_accepted"] + summary["events_rejected"] == 3000
    assert summary["events_rejected"] > 0  # the workload sends a few invalid events on purpose
    assert counted["v2_payload_versions"] == [2]
    assert summary["upvotes"]["posted_v2"] > 0
    assert summary["upvotes"]["v1_upcast_to_v2"] > 0  # v1 posted after the evolution lands as v2
    assert summary["dead_letters"] == 0

    table = pq.read_table(summary["training_set"]["path"])
    assert table.num_rows == summary["training_set"]["rows"] > 0
    assert {"upvoted", "user_upvoted_posts", "post_upvotes"} <= set(table.column_names)
    report = json.loads(Path(summary["training_set"]["report"]).read_text())
    assert json.dumps(report).count("passed") >= 1
    assert Path(summary["chart"]).stat().st_size > 10_000
    assert summary["console"]["url"].endswith("/ui")
    shots = summary["console"]["screenshots"]
    assert set(shots) == {"subjects", "subject", "feature", "lineage"}
    assert all(Path(p).stat().st_size > 10_000 for p in shots.values())
    assert summary["online"]["features"]["user_upvoted_posts"] >= 1
