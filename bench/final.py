"""What reading `events` with FINAL costs, now that first write wins keeps every event id
once in the table: the same queries with and without FINAL, side by side, on chDB.

    .venv/bin/python bench/final.py [--events 1000000] [--runs 5]

The store lives in a temporary directory (the real migrations), filled column-wise with
events of 20,000 entities over a month in loads of 50,000 (many parts, as a live store
has); each figure is the median of --runs runs.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

# Run as a script, this file's directory leads sys.path and its name would shadow the
# `materializer` package: drop it before importing the project.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from materializer.loader import EVENT_COLUMNS  # noqa: E402
from migrations import apply_clickhouse_migrations  # noqa: E402
from sluicegate.clickhouse import connect  # noqa: E402

QUERIES = {
    "count of a subject": "SELECT count() FROM events{final} WHERE subject = 'bench.final'",
    "per-entity aggregates": (
        "SELECT entity_key, count(), uniqExact(JSONExtractString(payload, 'post')), "
        "max(occurred_at) FROM events{final} WHERE subject = 'bench.final' "
        "GROUP BY entity_key FORMAT Null"
    ),
    "running window per entity": (
        "SELECT sum(running) FROM (SELECT entity_key, count() OVER (PARTITION BY entity_key "
        "ORDER BY occurred_at, ingested_at, event_id) AS running FROM events{final} "
        "WHERE subject = 'bench.final')"
    ),
}


def fill(client: object, n: int) -> None:
    rng = random.Random(1)
    start = 1_767_225_600_000  # 2026-01-01
    rows = []
    for i in range(n):
        at = start + rng.randrange(30 * 86_400_000)
        user = f"u{rng.randrange(20_000)}"
        rows.append(
            (
                str(uuid.UUID(int=rng.getrandbits(128))),
                "bench.final",
                user,
                at,
                at + 5,
                "http",
                "bench",
                "",
                None,
                None,
                1,
                1,
                1,
                f'{{"user":"{user}","post":"p{rng.randrange(50_000)}"}}',
                "sg.bench.final",
                0,
                i,
            )
        )
    # loads of 50,000 rows, as the materializer makes them: a live store has many parts
    for lo in range(0, n, 50_000):
        columns = [list(c) for c in zip(*rows[lo : lo + 50_000], strict=True)]
        client.insert(
            "events",
            columns,
            column_names=EVENT_COLUMNS,  # type: ignore[attr-defined]
            column_oriented=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sg-bench-final-"))
    try:
        client = connect(None, workdir)
        apply_clickhouse_migrations(client)
        fill(client, args.events)
        print(f"{args.events:,} events of 20,000 entities; medians of {args.runs} runs")
        print(f"{'query':<28}{'plain':>10}{'FINAL':>10}{'FINAL / plain':>16}")
        for name, sql in QUERIES.items():
            timings = {}
            for label, final in (("plain", ""), ("FINAL", " FINAL")):
                runs = []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    client.command(sql.format(final=final))
                    runs.append(time.perf_counter() - started)
                timings[label] = statistics.median(runs)
            print(
                f"{name:<28}{timings['plain'] * 1000:>8.0f}ms{timings['FINAL'] * 1000:>8.0f}ms"
                f"{timings['FINAL'] / timings['plain']:>15.2f}x"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
