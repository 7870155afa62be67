"""Kafka -> ClickHouse rows/s through the materializer, against the raw column-insert rate
of the same rows into chDB measured in the same run (the ceiling).

    .venv/bin/python bench/materializer.py [--events 300000] [--rounds 3] [--kafka 127.0.0.1:19092]

1. Produce N governed events (JSON subject, the gateway's wire format and headers) to a
   fresh topic, before anything consumes it.
2. Ceiling: insert the same rows, already decoded, column-wise into a copy of `events`
   in batches of the materializer's size (clickhouse-connect, column_oriented=True).
3. End to end: start the materializer (consumer group, decode by schema id, envelope,
   first-write-wins id check, load, commit) on the topic and time from its first
   committed load to the last row; then the same on a fresh topic with the id check
   switched off, so the figure prices first write wins. Each figure is a median.
The chDB store lives in a temporary directory of this process and is removed after; the
topic is deleted.
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

# Run as a script, this file's directory leads sys.path and its name would shadow the
# `materializer` package: drop it before importing the project.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import orjson  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from materializer.loader import (  # noqa: E402
    ClickHouseSink,
    Materializer,
    MaterializerConfig,
    group_id,
)
from materializer.loader._batch import EVENT_COLUMNS  # noqa: E402
from migrations import apply_clickhouse_migrations  # noqa: E402
from registry import Principal, Registry, SchemaType  # noqa: E402
from sluicegate.clickhouse import connect  # noqa: E402
from sluicegate.envelope import Envelope, Source, frame  # noqa: E402
from sluicegate.heap import settle_heap  # noqa: E402
from sluicegate.naming import topic_for_subject  # noqa: E402

SCHEMA = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string"},
        "post_id": {"type": "string"},
        "community": {"type": "string"},
        "ts": {"type": "string"},
        "score": {"type": "integer"},
    },
    "required": ["user_id", "post_id", "ts"],
}


def events(subject: str, schema_id: int, n: int) -> list[tuple[Envelope, bytes]]:
    base = 1_732_000_000_000
    out = []
    for i in range(n):
        payload = {
            "user_id": f"user{i % 50_000}",
            "post_id": f"post{i % 200_000}",
            "community": f"c{i % 300}",
            "ts": "2024-11-19T07:06:40.000Z",
            "score": i % 7,
        }
        env = Envelope(
            event_id=str(uuid.UUID(int=i)),
            subject=subject,
            schema_id=schema_id,
            schema_version=1,
            entity_key=payload["user_id"],
            occurred_at=base + i,
            ingested_at=base + i + 5,
            source=Source.HTTP,
            producer="bench",
            payload=payload,
        )
        out.append((env, orjson.dumps(payload)))
    return out


def produce(bootstrap: str, topic: str, evs: list[tuple[Envelope, bytes]]) -> float:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result()
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.num.messages": 10_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    started = time.perf_counter()
    for env, body in evs:
        while True:
            try:
                p.produce(
                    topic,
                    key=env.entity_key.encode(),
                    value=frame(env.schema_id, body),
                    headers=env.headers(),
                )
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(120) == 0
    return len(evs) / (time.perf_counter() - started)


def ceiling(client: Any, evs: list[tuple[Envelope, bytes]], batch: int, topic: str) -> float:
    """Rows/s of inserting the already-decoded rows column-wise, in loads of ``batch``."""
    client.command("DROP TABLE IF EXISTS bench_ceiling")
    client.command("CREATE TABLE bench_ceiling AS events")
    rows = [
        (
            e.event_id,
            e.subject,
            e.entity_key,
            e.occurred_at,
            e.ingested_at,
            "http",
            e.producer,
            "",
            None,
            None,
            e.schema_id,
            1,
            1,
            body.decode(),
            topic,
            0,
            i,
        )
        for i, (e, body) in enumerate(evs)
    ]
    started = time.perf_counter()
    for lo in range(0, len(rows), batch):
        columns = [list(c) for c in zip(*rows[lo : lo + batch], strict=True)]
        client.insert("bench_ceiling", columns, column_names=EVENT_COLUMNS, column_oriented=True)
    rate = len(rows) / (time.perf_counter() - started)
    client.command("DROP TABLE bench_ceiling")
    return rate


class WithoutIdCheck(ClickHouseSink):
    """The sink as it would be without first-write-wins: no id lookup, no id record (the
    baseline that prices the check)."""

    def _stored_ids(self, batches: list[Any]) -> set[tuple[str, str]]:
        return set()

    def _record_ids(self, batch: Any) -> None:
        return None


def end_to_end(
    client: Any,
    registry: Registry,
    bootstrap: str,
    n: int,
    config: MaterializerConfig,
    sink: ClickHouseSink,
) -> tuple[float, float]:
    """(rows/s from the first committed load to the last row, seconds to the first load)."""
    loader = Materializer(config, sink, registry)
    started = time.perf_counter()
    loader.start()
    first = None
    while loader.loaded_rows < n:
        if first is None and loader.loaded_rows > 0:
            first = (time.perf_counter(), loader.loaded_rows)
        if time.perf_counter() - started > 600:
            raise RuntimeError(f"only {loader.loaded_rows} of {n} rows loaded in 600 s")
        time.sleep(0.005)
    done = time.perf_counter()
    loader.stop()
    assert first is not None
    return (n - first[1]) / (done - first[0]), first[0] - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--kafka", default="127.0.0.1:19092")
    parser.add_argument("--batch", type=int, default=MaterializerConfig.max_batch_rows)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each figure (median)")
    args = parser.parse_args()

    settle_heap()  # as `sluicegate serve` runs
    workdir = Path(tempfile.mkdtemp(prefix="sg-bench-mz-"))
    registry = Registry.open(f"sqlite:///{workdir / 'registry.db'}")
    topics: list[str] = []
    try:
        client = connect(None, workdir)
        apply_clickhouse_migrations(client)
        ceilings, checked, unchecked, warmups, produced = [], [], [], [], []
        size = 0.0
        for _ in range(args.rounds):
            # one fresh subject per figure: each run loads ids the store has never seen
            for sink_class, figures in ((ClickHouseSink, checked), (WithoutIdCheck, unchecked)):
                subject = f"bench.mz{uuid.uuid4().hex[:8]}"
                topic = topic_for_subject(subject)
                topics.append(topic)
                schema_id = registry.register(
                    subject,
                    orjson.dumps(SCHEMA).decode(),
                    SchemaType.JSON,
                    principal=Principal("admin", admin=True),
                ).id
                evs = events(subject, schema_id, args.events)
                size = sum(len(body) for _, body in evs) / len(evs)
                produced.append(produce(args.kafka, topic, evs))
                if sink_class is ClickHouseSink:
                    ceilings.append(ceiling(client, evs, args.batch, topic))
                del evs
                config = MaterializerConfig(
                    kafka_bootstrap=args.kafka,
                    group_id=group_id(client),
                    subscription=topic,
                    max_batch_rows=args.batch,
                )
                rate, warmup = end_to_end(
                    client, registry, args.kafka, args.events, config, sink_class(client)
                )
                figures.append(rate)
                warmups.append(warmup)
                loaded = client.query(f"SELECT count() FROM events WHERE subject = '{subject}'")
                assert loaded.result_rows[0][0] == args.events, loaded.result_rows
        ceiling_rate, rate, plain = (statistics.median(x) for x in (ceilings, checked, unchecked))
        report = [
            (
                "events per run",
                f"{args.events:,}",
                f"JSON payload {size:.0f} B + CloudEvents headers; medians of {args.rounds} runs",
            ),
            ("produce to Kafka", f"{statistics.median(produced):,.0f} events/s", ""),
            ("ceiling: column insert", f"{ceiling_rate:,.0f} rows/s", f"loads of {args.batch:,}"),
            (
                "end to end: Kafka -> events",
                f"{rate:,.0f} rows/s",
                f"first load {statistics.median(warmups):.1f} s after start",
            ),
            ("  without the id check", f"{plain:,.0f} rows/s", "first write wins switched off"),
            ("ratio end to end / ceiling", f"{rate / ceiling_rate:.2f}", ""),
            ("cost of first write wins", f"{1 - rate / plain:.1%}", "of loading throughput"),
        ]
        for name, value, note in report:
            print(f"{name:<30}{value:>20}  {note}".rstrip())
    finally:
        registry.close()
        admin = AdminClient({"bootstrap.servers": args.kafka})
        if topics:
            for future in admin.delete_topics(topics, operation_timeout=30).values():
                future.result()  # other stores on the broker must not keep loading them
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
