"""What the first-write-wins lookup of one load costs as `event_ids` grows, for ids that
are time-ordered (the gateway's UUIDv7, the baseline) and for ids that are not (clients'
own ids, UUIDv4), side by side in one run.

    .venv/bin/python bench/id_lookup.py [--stored 1000000 4000000] [--runs 10]

For each size, fills `event_ids` of a fresh chDB store (in a temporary directory) with that
many ids of one subject (INSERT ... SELECT), then times ClickHouseSink's lookup of loads
of 1,000 and 100,000 new ids of the same kind (one of them stored already, which the lookup
must find) and prints the medians of the lookup query (after the sink staged the ids) and
the ratio random / time-ordered. Beside each, the baseline run on the same staged ids in
alternating order: the pair alone (`(subject, event_id) IN`), as the loader looked ids up
before it matched subjects and ids as two single-column sets.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

# Run as a script, this file's directory leads sys.path and its name could shadow a
# package of the project: drop it before importing the project.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from materializer.loader import ClickHouseSink  # noqa: E402
from materializer.loader._batch import Batch, EventColumns, Plan  # noqa: E402
from materializer.loader._sink import LOOKUP_STAGED_IDS  # noqa: E402
from migrations import apply_clickhouse_migrations  # noqa: E402
from sluicegate.clickhouse import connect  # noqa: E402

SUBJECT = "bench.ids"
LOADS = (1_000, 100_000)
PAIR_ONLY = (
    "SELECT subject, event_id FROM event_ids WHERE (subject, event_id) IN "
    "(SELECT subject, event_id FROM _sg_load_ids)"
)


def load(ids: list[str]) -> Batch:
    batch = Batch(Plan.for_range("sg.bench.ids", 0, 0, len(ids) - 1), EventColumns(), [])
    for i, event_id in enumerate(ids):
        batch.events.append(
            (event_id, SUBJECT, b"k", 0, 0, "http", "", "", None, None, 1, 1, 1, b"{}",
             "sg.bench.ids", 0, i)
        )  # fmt: skip
    return batch


def new_ids(client: Any, kind: str, n: int) -> list[str]:
    """``n`` ids not stored yet: random, or time-ordered after the stored ones."""
    if kind == "v4":
        return [str(uuid.uuid4()) for _ in range(n)]
    rows = client.query(f"SELECT toString(generateUUIDv7(number)) FROM numbers({n})")
    return [r[0] for r in rows.result_rows]


def lookups(stored: int, kind: str, runs: int) -> dict[int, tuple[float, float]]:
    """Median seconds of the lookup of each load size against ``stored`` ids of ``kind``,
    and of the baseline's."""
    workdir = Path(tempfile.mkdtemp(prefix="sg-bench-ids-"))
    try:
        client = connect(None, workdir)
        apply_clickhouse_migrations(client)
        client.command(
            f"INSERT INTO event_ids SELECT '{SUBJECT}', toString(generateUUID{kind}()), "
            f"now64(3) FROM numbers({stored})"
        )
        client.command("OPTIMIZE TABLE event_ids FINAL")
        known = str(client.command("SELECT event_id FROM event_ids LIMIT 1 OFFSET 12345"))
        sink = ClickHouseSink(client)
        out = {}
        for size in LOADS:
            took: dict[str, list[float]] = {LOOKUP_STAGED_IDS: [], PAIR_ONLY: []}
            for run in range(runs):
                batch = load([known, *new_ids(client, kind, size - 1)])
                assert sink._stored_ids([batch]) == {(SUBJECT, known)}  # stages the ids
                queries = [LOOKUP_STAGED_IDS, PAIR_ONLY]
                for query in queries if run % 2 else reversed(queries):
                    t = time.perf_counter()
                    rows = client.query(query).result_rows
                    took[query].append(time.perf_counter() - t)
                    assert {tuple(r) for r in rows} == {(SUBJECT, known)}, rows
            out[size] = (
                statistics.median(took[LOOKUP_STAGED_IDS]),
                statistics.median(took[PAIR_ONLY]),
            )
        client.close()
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stored", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(
        f"{'stored ids':>12}{'load':>9}{'time-ordered':>15}{'(baseline)':>13}"
        f"{'random':>12}{'(baseline)':>13}{'random/ordered':>16}"
    )
    for stored in args.stored:
        ordered, random = lookups(stored, "v7", args.runs), lookups(stored, "v4", args.runs)
        for size in LOADS:
            (o, ob), (r, rb) = ordered[size], random[size]
            print(
                f"{stored:>12,}{size:>9,}{o * 1e3:>12.1f} ms{ob * 1e3:>10.1f} ms"
                f"{r * 1e3:>9.1f} ms{rb * 1e3:>10.1f} ms{r / o:>15.1f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
