"""A candidate schema checked against every stored event of a subject (the pass in
ClickHouse of `POST /v1/subjects/{s}/check`), beside the floor measured in the same run:
one scan reading the same fields of every payload once, with no rule.

    .venv/bin/python bench/schema_check.py [--events 10000000] [--runs 3] [--sample 1000]

1. Build a chDB store in a temporary directory of this process: `events` filled directly in
   ClickHouse (INSERT ... SELECT from numbers()), version 1 of a 5-field JSON subject, and a
   version 2 renaming `amount` to `value` with a migration, so that every v1 event is read
   through the read plan; a fraction of the events lacks `amount`, another holds it as text.
2. The candidate: version 3 requiring `value` (an integer) and `currency`.
3. Medians of --runs: the floor (count the events with a null `value`, read as stored), the
   check over every event (`check_log` with sample 0), and the check with a sample of
   --sample events validated in full in Python. The counts are compared with a brute force
   in SQL.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's directory leads sys.path and its name would shadow nothing,
# but keep the project's packages first all the same.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import orjson  # noqa: E402

from materializer.changes._log import check_log  # noqa: E402
from materializer.features._upcast import plan_reader  # noqa: E402
from migrations import apply_clickhouse_migrations  # noqa: E402
from registry import Principal, Registry, SchemaType  # noqa: E402
from sluicegate.clickhouse import connect  # noqa: E402

SUBJECT = "bench.payments"
ADMIN = Principal("admin", admin=True)
_FIELDS = {
    "user_id": {"type": "string"},
    "currency": {"type": "string"},
    "channel": {"type": "string"},
    "note": {"type": "string"},
}
V1 = {"type": "object", "properties": {**_FIELDS, "amount": {"type": "integer"}}}
V2 = {"type": "object", "properties": {**_FIELDS, "value": {"type": "integer"}}}
V3 = {**V2, "required": ["user_id", "value", "currency"]}


def fill(client: Any, events: int) -> float:
    """``events`` payments, half stored as version 1 (amount) and half as version 2
    (value): 1 in 997 lack the amount, 1 in 1009 hold it as text, 1 in 101 lack currency."""
    started = time.perf_counter()
    client.command(f"""
        INSERT INTO events (event_id, subject, entity_key, occurred_at, ingested_at, source,
                            producer, op, schema_id, schema_version, payload_version, payload,
                            kafka_topic, kafka_partition, kafka_offset)
        SELECT toString(generateUUIDv4(number)), '{SUBJECT}', u, t, t, 'http', 'bench', '',
               v, v, v,
               concat('{{"user_id":"', u, '"',
                      if(number % 101 = 0, '', ',"currency":"EUR"'),
                      ',"channel":"web","note":"n"',
                      multiIf(number % 997 = 0, '',
                              number % 1009 = 0, concat(',"', f, '":"12"'),
                              concat(',"', f, '":', toString(number % 500))),
                      '}}'),
               'sg.{SUBJECT}', 0, number
        FROM (SELECT number, concat('u', toString(number % 100000)) AS u,
                     if(number % 2 = 0, 1, 2) AS v, if(v = 1, 'amount', 'value') AS f,
                     fromUnixTimestamp64Milli(toInt64(1700000000000 + number * 10), 'UTC') AS t
              FROM numbers({events}))
        SETTINGS max_insert_threads = 2
    """)
    return time.perf_counter() - started


def expected(events: int) -> dict[tuple[str, str], int]:
    """The brute force: how many generated events break each rule."""
    numbers = range(events)
    return {
        ("$.value", "required"): sum(1 for n in numbers if n % 997 == 0),
        ("$.value", "type"): sum(1 for n in numbers if n % 997 != 0 and n % 1009 == 0),
        ("$.currency", "required"): sum(1 for n in numbers if n % 101 == 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=1000)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="sg-bench-check-"))
    try:
        client = connect(None, workdir)
        apply_clickhouse_migrations(client)
        registry = Registry.open(f"sqlite:///{workdir / 'registry.db'}")
        registry.register(SUBJECT, orjson.dumps(V1).decode(), SchemaType.JSON, principal=ADMIN)
        registry.register(
            SUBJECT,
            orjson.dumps(V2).decode(),
            SchemaType.JSON,
            principal=ADMIN,
            migration=[{"op": "rename", "from": "amount", "to": "value"}],
        )
        print(f"filling events: {args.events:,} ...", flush=True)
        fill_s = fill(client, args.events)
        candidate = registry.candidate(SUBJECT, orjson.dumps(V3).decode(), SchemaType.JSON)
        reader = plan_reader(registry, SUBJECT, candidate.plan)
        floor_sql = (
            "SELECT countIf(isNull(multiIf(payload_version = 1, "
            "JSONExtract(payload, 'amount', 'Nullable(Int64)'), "
            "JSONExtract(payload, 'value', 'Nullable(Int64)')))) "
            f"FROM events WHERE subject = '{SUBJECT}'"
        )
        floors, checks, sampled = [], [], []
        found: dict[tuple[str, str], int] = {}
        sample_size = 0
        for _ in range(args.runs):
            started = time.perf_counter()
            client.query(floor_sql)
            floors.append(time.perf_counter() - started)
            started = time.perf_counter()
            log = check_log(client, candidate, reader, sample=0)
            checks.append(time.perf_counter() - started)
            found = {(v.path, v.rule): v.events for v in log.violations}
            started = time.perf_counter()
            with_sample = check_log(client, candidate, reader, sample=args.sample)
            sampled.append(time.perf_counter() - started)
            sample_size = with_sample.sample
        want = expected(args.events)
        assert found == want, (found, want)
        floor, check, sample = (statistics.median(x) for x in (floors, checks, sampled))
        rows = [
            ("events", f"{args.events:,}", f"filled in {fill_s:.1f} s; medians of {args.runs}"),
            ("floor: one null count", f"{floor:.2f} s", "the field read once, no rule"),
            ("check, every event", f"{check:.2f} s", f"{check / floor:.2f}x the floor"),
            (
                f"  + a sample of {sample_size:,} in full",
                f"{sample:.2f} s",
                f"{sample / floor:.2f}x the floor",
            ),
            ("violations found", f"{sum(found.values()):,}", "equal to the brute force"),
        ]
        for name, value, note in rows:
            print(f"{name:<34}{value:>14}  {note}")
        registry.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
