"""Online feature read latency on a store of 1,000,000 entities, and freshness from
gateway accept to online visibility. Every figure is printed beside the floor measured in
the same run: one point read of one key of one table (`SELECT count() ... WHERE entity =`)
through the same client.

    .venv/bin/python bench/features.py [--entities 1000000] [--events 3000000]
                                        [--reads 2000] [--no-http] [--no-freshness]

1. Build a chDB store in a temporary directory of this process: `events` filled directly
   in ClickHouse (INSERT ... SELECT from numbers(); upvotes of --entities users over 30
   days), a registry with the subject's schema.
2. Apply 10 features of the user (counts over 1h/1d/7d/lifetime, distinct posts lifetime
   and 7d, sum over 30d, avg, last value, countIf) through the FeatureStore: the real
   validation, DDL and backfill (its time is reported too).
Before 3 and 4 the measured process waits until it is idle: a store opened by a new
process first runs a TTL merge of its entity table (per-event rows expire continuously).

3. Latency, in-process (FeatureStore.read: SQL generation + one chDB query + decoding):
   the floor, one entity x 10 features, and a batch of 100 random keys x 10 features;
   CPU time per read (this process: Python and chDB); how much of a read is planning (its
   SQL under EXPLAIN AST and EXPLAIN PLAN beside the read); four threads reading at once.
4. Latency over HTTP: the same store served by a real `sluicegate serve` (the floor as
   `POST /v1/sql`, GET one entity, POST a batch of 100), measured with httpx keep-alive;
   then four concurrent clients (reads/s, p99) and the server's CPU time per read.
5. Freshness: a fresh `sluicegate serve` with the local Kafka: post an event through the
   gateway, poll the online feature until it counts it; p50/p99 over --fresh-events.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import httpx  # noqa: E402
import orjson  # noqa: E402

from materializer.features import FeatureStore, parse_definitions  # noqa: E402
from materializer.features._catalog import resolve_records  # noqa: E402
from materializer.features.sql import entity_table, online_query  # noqa: E402
from migrations import apply_clickhouse_migrations  # noqa: E402
from registry import Principal, Registry, SchemaType, SubjectMetadata  # noqa: E402
from sluicegate.clickhouse import connect  # noqa: E402

SUBJECT = "bench.upvote"
SCHEMA = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string"},
        "post_id": {"type": "string"},
        "vote": {"type": "integer"},
        "score": {"type": "number"},
        "ts": {"type": "string", "format": "date-time"},
    },
    "required": ["user_id", "post_id", "vote", "score", "ts"],
}
FEATURES = """
name: upvotes_1h
entity: {type: user, key: user_id}
source: bench.upvote
aggregation: count()
window: 1h
---
name: upvotes_1d
entity: {type: user, key: user_id}
source: bench.upvote
aggregation: count()
window: 1d
---
name: upvotes_7d
entity: {type: user, key: user_id}
source: bench.upvote
aggregation: count()
window: 7d
---
name: upvotes
entity: {type: user, key: user_id}
source: bench.upvote
aggregation: count()
---
name: posts
entity: {type: user, key: user_id}
source: bench.upvote
aggregation: uniqExact(post_id)
---
name: posts_7d
entity: {type: user, key: user_id}
source: bench.upvote
aggregation: uniqExact(post_id)
window: 7d
---
name: votes_30d
entity: {type: user, key: user_id}
source: bench.upvote
aggregation: sum(vote)
window: 30d
---
name: avg_score
entity: {type: user, key: user_id}
source: bench.upvote
aggregation: avg(score)
---
name: last_post
entity: {type: user, key: user_id}
source: bench.upvote
aggregation: last(post_id)
---
name: positive_7d
entity: {type: user, key: user_id}
source: bench.upvote
aggregation: countIf(vote = 1)
window: 7d
"""
NAMES = [d.name for d in parse_definitions(FEATURES)]


def cpu_s(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default), all threads."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, limit_s: float = 600) -> None:
    """Wait until a process is idle (under 0.1 core over 2 s): a store opened by a new
    process runs its TTL merges first (rows of short windows expire continuously), which
    would otherwise share the cores with the reads measured."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        before = cpu_s(pid)
        time.sleep(2)
        if cpu_s(pid) - before < 0.2:
            break
    print(f"  (waited {time.monotonic() - started:.0f} s for background merges)", flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(label: str, ms: list[float], floor: list[float] | None = None) -> None:
    ratio = ""
    if floor:
        p50, p99 = pct(ms, 0.5) / pct(floor, 0.5), pct(ms, 0.99) / pct(floor, 0.99)
        ratio = f"   {p50:5.2f}x / {p99:5.2f}x the floor's p50 / p99"
    print(
        f"  {label:<40} p50 {pct(ms, 0.5):7.2f} ms   p99 {pct(ms, 0.99):7.2f} ms   "
        f"mean {statistics.fmean(ms):7.2f} ms   (n={len(ms)}){ratio}",
        flush=True,
    )


def fill_events(client: Any, entities: int, events: int) -> float:
    started = time.perf_counter()
    now_ms = int(time.time() * 1000)
    client.command(f"""
        INSERT INTO events (event_id, subject, entity_key, occurred_at, ingested_at, source,
                            producer, op, schema_id, schema_version, payload_version, payload,
                            kafka_topic, kafka_partition, kafka_offset)
        SELECT toString(generateUUIDv4(number)), '{SUBJECT}', u, t, t, 'http', 'bench', '',
               1, 1, 1,
               concat('{{"user_id":"', u,
                      '","post_id":"p', toString(cityHash64(number, 1) % 200000),
                      '","vote":', toString(cityHash64(number, 2) % 2),
                      ',"score":', toString((cityHash64(number, 3) % 1000) / 10.0),
                      ',"ts":"', formatDateTime(t, '%Y-%m-%dT%H:%i:%S.000Z'), '"}}'),
               'sg.{SUBJECT}', 0, number
        FROM (SELECT number,
                     concat('u', toString(if(number < {entities}, number,
                                             cityHash64(number) % {entities}))) AS u,
                     fromUnixTimestamp64Milli(toInt64({now_ms} - cityHash64(number, 4)
                                                      % {30 * 86_400_000}), 'UTC') AS t
              FROM numbers({events}))
        SETTINGS max_insert_threads = 2
    """)
    return time.perf_counter() - started  # the first `entities` events give each one an event


def build(data_dir: Path, entities: int, events: int) -> None:
    client = connect(None, data_dir)
    apply_clickhouse_migrations(client)
    print(f"filling events: {events:,} upvotes of {entities:,} users ...", flush=True)
    took = fill_events(client, entities, events)
    n_entities = client.command(f"SELECT uniq(entity_key) FROM events WHERE subject = '{SUBJECT}'")
    print(f"  {events:,} events in {took:.1f} s; ~{int(n_entities):,} distinct users", flush=True)
    registry = Registry.open(f"sqlite:///{data_dir / 'registry.db'}", admin_token="bench-admin")
    admin = Principal("admin", admin=True)
    registry.register(
        SUBJECT,
        orjson.dumps(SCHEMA).decode(),
        SchemaType.JSON,
        principal=admin,
        metadata=SubjectMetadata(SUBJECT, owner="admin", entity_key=["user_id"], event_time="ts"),
    )
    store = FeatureStore(
        client, [connect(None, data_dir)], registry, start_delay_ms=200, inflight_margin_ms=200
    )
    started = time.perf_counter()
    job = store.apply(parse_definitions(FEATURES), team="admin", admin=True)["job"]
    store.jobs.wait()
    final = store.jobs.get(job["id"]).view()  # type: ignore[union-attr]
    took = time.perf_counter() - started
    print(
        f"backfill of 10 features: {final['state']} in {took:.1f} s "
        f"({final['total'] / took:,.0f} feature-events/s)",
        flush=True,
    )
    if final["state"] != "done":
        raise SystemExit(f"backfill failed: {final['error']}")

    rng = random.Random(1)
    keys = [f"u{rng.randrange(entities)}" for _ in range(20_000)]
    reader = connect(None, data_dir)  # the floor's own client, as the store's readers are
    table = entity_table("user")
    print(f"in-process reads (FeatureStore.read: one SQL query per request, table {table}):")
    settle(os.getpid())
    for _ in range(50):  # warm up
        store.read("user", [rng.choice(keys)], NAMES)
        reader.query(f"SELECT count() FROM {table} WHERE entity = 'u1'")
    floor, single, batch = [], [], []
    for i in range(args.reads):
        t = time.perf_counter()
        reader.query(
            f"SELECT count() FROM {table} WHERE entity = {{k:String}}",
            parameters={"k": keys[i]},
            settings={"max_threads": 1},
        )
        floor.append((time.perf_counter() - t) * 1000)
    summary("floor: point read of one key, one table", floor)
    cpu = cpu_s()
    for i in range(args.reads):
        t = time.perf_counter()
        values, _, _ = store.read("user", [keys[i]], NAMES)
        single.append((time.perf_counter() - t) * 1000)
        assert len(values[keys[i]]) == 10
    cpu = cpu_s() - cpu
    summary("1 entity x 10 features", single, floor)
    print(f"  CPU time per read (1 entity x 10 features): {cpu / args.reads * 1000:.2f} ms")
    for i in range(args.reads):
        chunk = [keys[(i * 100 + j) % len(keys)] for j in range(100)]
        t = time.perf_counter()
        store.read("user", chunk, NAMES)
        batch.append((time.perf_counter() - t) * 1000)
    summary("batch of 100 keys x 10 features", batch, floor)
    planning(store, reader, keys)
    threaded_reads(store, keys)
    sample = store.read("user", [keys[0]], NAMES)[0][keys[0]]
    print(f"  e.g. {keys[0]}: {sample}", flush=True)
    store.close()
    registry.close()
    client.close()


def planning(store: FeatureStore, reader: Any, keys: list[str]) -> None:
    """How much of one read (1 entity x 10 features) is ClickHouse parsing, analysing and
    planning the query: the same SQL as the read, run, then under ``EXPLAIN AST`` (parsed
    only) and ``EXPLAIN PLAN`` (parsed, analysed and planned, nothing read)."""
    recs = resolve_records(store.records(), NAMES)
    features = [(store.compiled(r), r.objects) for r in recs]
    figures: dict[str, list[float]] = {"run": [], "EXPLAIN AST": [], "EXPLAIN PLAN": []}
    for i in range(args.reads):
        query = online_query(entity_table("user"), [keys[i]], features, int(time.time() * 1000))
        for label, times in figures.items():
            prefix = "" if label == "run" else label + " "
            t = time.perf_counter()
            reader.query(prefix + query.sql, settings={"max_threads": 1})
            times.append((time.perf_counter() - t) * 1000)
    run, parse, plan = (pct(figures[k], 0.5) for k in ("run", "EXPLAIN AST", "EXPLAIN PLAN"))
    print(
        f"  the read's SQL (p50): run {run:.2f} ms; parsed only {parse:.2f} ms; parsed, "
        f"analysed and planned {plan:.2f} ms ({plan / run:.0%} of the run)",
        flush=True,
    )


def threaded_reads(store: FeatureStore, keys: list[str], threads: int = 4) -> None:
    """``threads`` threads in this process, each reading one entity x 10 features
    ``--reads`` times: reads as of now of the same features share queries."""
    latencies: list[list[float]] = [[] for _ in range(threads)]

    def run(i: int) -> None:
        for j in range(args.reads):
            key = keys[(i * args.reads + j) % len(keys)]
            t = time.perf_counter()
            store.read("user", [key], NAMES)
            latencies[i].append((time.perf_counter() - t) * 1000)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    cpu, started = cpu_s(), time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    took, cpu = time.perf_counter() - started, cpu_s() - cpu
    every = [ms for lat in latencies for ms in lat]
    summary(f"{threads} threads: {len(every) / took:,.0f} reads/s", every)
    print(f"  CPU time per read ({threads} threads): {cpu / len(every) * 1000:.2f} ms", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(
    data_dir: Path, token: str, extra: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "SLUICEGATE_DATA_DIR": str(data_dir),
        "SLUICEGATE_PORT": str(port),
        "SLUICEGATE_ADMIN_TOKEN": token,
        "TZ": "UTC",
        **(extra or {}),
    }
    log = (data_dir / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sluicegate", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("serve did not start")


def http_reads(data_dir: Path, entities: int) -> None:
    # no Kafka for this server: only the features API is measured
    proc, url = serve(data_dir, "bench-admin", {"SLUICEGATE_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    try:
        rng = random.Random(2)
        names = ",".join(NAMES)
        settle(proc.pid)
        with httpx.Client(
            base_url=url, headers={"Authorization": "Bearer bench-admin"}, timeout=30
        ) as http:
            for _ in range(50):
                http.get(f"/v1/features/user/u{rng.randrange(entities)}", params={"names": names})
            table = entity_table("user")
            floor, single, batch = [], [], []
            for _ in range(args.reads):
                query = f"SELECT count() FROM {table} WHERE entity = 'u{rng.randrange(entities)}'"
                t = time.perf_counter()
                r = http.post("/v1/sql", json={"query": query})
                floor.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, r.text
            cpu = cpu_s(proc.pid)
            for _ in range(args.reads):
                t = time.perf_counter()
                r = http.get(
                    f"/v1/features/user/u{rng.randrange(entities)}", params={"names": names}
                )
                single.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, r.text
            cpu = cpu_s(proc.pid) - cpu
            for _ in range(args.reads):
                keys = [f"u{rng.randrange(entities)}" for _ in range(100)]
                t = time.perf_counter()
                r = http.post("/v1/features/user/batch", json={"keys": keys, "names": NAMES})
                batch.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, r.text
        print("over HTTP (a real `sluicegate serve`, keep-alive):", flush=True)
        summary("floor: POST /v1/sql point read, one table", floor)
        summary("GET 1 entity x 10 features", single, floor)
        print(f"  server CPU time per GET: {cpu / args.reads * 1000:.2f} ms")
        summary("POST batch of 100 keys x 10 features", batch, floor)
        concurrent(url, entities, proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)


def concurrent(url: str, entities: int, pid: int, clients: int = 4) -> None:
    """``clients`` threads, each with its own keep-alive connection, GET one entity x 10
    features ``--reads`` times each."""
    names = ",".join(NAMES)
    latencies: list[list[float]] = [[] for _ in range(clients)]

    def run(i: int) -> None:
        rng = random.Random(100 + i)
        with httpx.Client(
            base_url=url, headers={"Authorization": "Bearer bench-admin"}, timeout=30
        ) as http:
            for _ in range(args.reads):
                t = time.perf_counter()
                r = http.get(
                    f"/v1/features/user/u{rng.randrange(entities)}", params={"names": names}
                )
                latencies[i].append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, r.text

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    cpu, started = cpu_s(pid), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took, cpu = time.perf_counter() - started, cpu_s(pid) - cpu
    every = [ms for lat in latencies for ms in lat]
    print(f"{clients} concurrent clients, GET 1 entity x 10 features:", flush=True)
    summary(f"{len(every) / took:,.0f} reads/s", every)
    print(f"  server CPU time per read: {cpu / len(every) * 1000:.2f} ms")


def freshness(kafka: str, samples: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="sg-bench-fresh-"))
    subject = f"bench.fresh_{uuid.uuid4().hex[:8]}"
    # its own topic only: what else the broker holds is a backlog, not this path's latency
    proc, url = serve(
        data_dir,
        "bench-admin",
        {"SLUICEGATE_KAFKA_BOOTSTRAP": kafka, "SLUICEGATE_MATERIALIZE_TOPICS": f"sg.{subject}"},
    )
    try:
        with httpx.Client(
            base_url=url, headers={"Authorization": "Bearer bench-admin"}, timeout=30
        ) as http:
            r = http.post(
                f"/v1/subjects/{subject}/versions",
                json={
                    "schema": orjson.dumps(SCHEMA).decode(),
                    "schemaType": "JSON",
                    "metadata": {"owner": "admin", "entity_key": ["user_id"], "event_time": "ts"},
                },
            )
            assert r.status_code in (200, 201), r.text
            r = http.post(
                "/v1/features/_definitions",
                json={
                    "definitions": [
                        {
                            "name": "fresh_count",
                            "entity": {"type": "user", "key": "user_id"},
                            "source": subject,
                            "aggregation": "count()",
                        }
                    ]
                },
            )
            assert r.status_code == 200, r.text
            job = r.json()["job"]
            while job["state"] == "running":
                time.sleep(0.2)
                job = http.get(f"/v1/features/_jobs/{job['id']}").json()
            lags: list[float] = []
            # the first event waits for the new topic's first assignment; a warm-up, not a
            # sample
            for i in range(samples + 1):
                ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 1))
                r = http.post(
                    f"/v1/events/{subject}",
                    json={
                        "user_id": "fresh",
                        "post_id": f"p{i}",
                        "vote": 1,
                        "score": 1.0,
                        "ts": ts,
                    },
                )
                accepted = time.perf_counter()
                assert r.status_code == 202, r.text
                deadline = accepted + (900 if i == 0 else 120)
                while time.perf_counter() < deadline:
                    v = http.get("/v1/features/user/fresh", params={"names": "fresh_count"})
                    if v.json()["features"]["fresh_count"] >= i + 1:
                        if i:
                            lags.append((time.perf_counter() - accepted) * 1000)
                        break
                    time.sleep(0.01)
                else:
                    print(f"  event {i} not visible in time", flush=True)
                    return
        print("freshness, gateway 202 -> visible in the online feature:", flush=True)
        summary("accept -> online", lags)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)
        try:
            from confluent_kafka.admin import AdminClient

            AdminClient({"bootstrap.servers": kafka}).delete_topics(["sg." + subject])
        except Exception as exc:  # cleanup only
            print(f"  (topic cleanup failed: {exc})")


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="sg-bench-features-"))
    try:
        build(data_dir, args.entities, args.events)
        if args.http:
            http_reads(data_dir, args.entities)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    if args.freshness:
        freshness(args.kafka, args.fresh_events)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--http", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--freshness", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--fresh-events", type=int, default=30)
    parser.add_argument("--kafka", default="127.0.0.1:19092")
    args = parser.parse_args()
    main()
