"""CDC latency and throughput: PostgreSQL commit -> governed topic, through Debezium on
Kafka Connect and the bridge inside `sluicegate serve`.

    .venv/bin/python bench/cdc.py [--rows 100000] [--latency-samples 200] [--rate 20]

Uses the running local stack (PostgreSQL, Kafka, the shared Connect worker) and starts a
`sluicegate serve` of its own (temporary data directory and CDC config directory):

1. latency: single-row INSERT transactions at a fixed rate; for each, the time from the
   commit returning to the client until the governed record is consumed from
   sg.cdc.<db>.<table> (p50, p99, max);
2. bulk, end to end: one UPDATE of every row (--rows) in one transaction, --warmup times
   untimed (a Connect worker that has run for a while has compiled its hot paths; a fresh
   JVM is still compiling them, and its rate is printed beside) and then --runs times;
   the median time from the commit until the last governed record, with the raw Debezium
   topic's own timeline beside it (where the time goes);
3. bulk, catch-up: the same UPDATE with the server stopped, so the raw topic holds every
   change before the bridge starts; then the bridge's catch-up rate inside the restarted
   server (first to last governed record);
4. the bridge alone: the raw records of step 3 copied to the raw topic of a second
   database name, bridged by a DatabaseBridge in this process (its own SQLite registry),
   with neither the materializer nor Connect competing in the same process.

The table, connector, slot, publication and topics are removed at the end.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run as a script, this file's directory leads sys.path: keep it from shadowing packages.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import httpx  # noqa: E402
import psycopg  # noqa: E402
import yaml  # noqa: E402
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from cdc import DatabaseBridge, create_raw_topics, parse_config  # noqa: E402
from cdc._metrics import CdcMetrics  # noqa: E402
from registry import Registry  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SLUICEGATE = str(ROOT / ".venv" / "bin" / "sluicegate")
PG_DSN = os.environ.get(
    "SLUICEGATE_BENCH_PG_DSN", "host=127.0.0.1 port=55432 dbname=app user=cdc password=cdc"
)
KAFKA = os.environ.get("SLUICEGATE_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
CONNECT = os.environ.get("SLUICEGATE_CONNECT_URL", "http://127.0.0.1:18083")


class Arrivals(threading.Thread):
    """Consumes a topic from the beginning, recording when each record arrived."""

    def __init__(self, topic: str) -> None:
        super().__init__(daemon=True)
        self.topic = topic
        self.times: list[tuple[float, bytes | None, str]] = []  # (arrival, key, op)
        self.ops: collections.Counter[str] = collections.Counter()
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        c = Consumer(
            {
                "bootstrap.servers": KAFKA,
                "group.id": f"bench-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "topic.metadata.refresh.interval.ms": 1000,
                "fetch.wait.max.ms": 10,
                "log_level": 0,
            }
        )
        c.subscribe([self.topic])
        while not self.stop.is_set():
            batch = c.consume(1, timeout=0.1)
            if batch:
                batch += c.consume(5000, timeout=0)
            for m in batch:
                if m.error() is not None or m.value() is None:
                    continue
                now = time.time()
                op = next((v.decode() for k, v in (m.headers() or []) if k == "ce_op"), "")
                with self.lock:
                    self.times.append((now, m.key(), op))
                    self.ops[op] += 1
        c.close()

    def count(self, op: str | None = None) -> int:
        """Records seen (of one op); constant time, as the waits poll it every 10 ms."""
        with self.lock:
            return len(self.times) if op is None else self.ops[op]

    def snapshot(self) -> list[tuple[float, bytes | None, str]]:
        with self.lock:
            return list(self.times)


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _raw_id(key: bytes | None) -> bytes:
    """The governed key (the id's text) of a raw Debezium key ``{"id": N}``."""
    return str(json.loads(key or b"{}").get("id")).encode()


def _start_server(data_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = 18000 + uuid.uuid4().int % 1000
    url = f"http://127.0.0.1:{port}"
    env = {
        **env,
        "SLUICEGATE_PORT": str(port),
        "SLUICEGATE_DATA_DIR": str(data_dir),
        "SLUICEGATE_SERVER_URL": url,
    }
    log = (data_dir.parent / "serve.log").open("ab")
    proc = subprocess.Popen([SLUICEGATE, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    _wait(lambda: _healthy(url), 60, "sluicegate serve")
    return proc, url


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class Bulk:
    """One bulk update's timeline, in seconds: commit -> last raw record, commit -> last
    governed record, and first -> last governed record."""

    raw: float
    governed: float
    bridge: float


class Marks:
    """Records a topic holds (the sum of its partitions' high watermarks), read without
    consuming them: the bulk phases time their records this way, so measuring takes none
    of the CPU the measured pipeline needs."""

    def __init__(self) -> None:
        self.c = Consumer(
            {
                "bootstrap.servers": KAFKA,
                "group.id": f"bench-marks-{uuid.uuid4().hex}",
                "log_level": 0,
            }
        )
        self.partitions: dict[str, list[int]] = {}

    def high(self, topic: str) -> int:
        """0 while the topic does not exist yet or its partitions have no leader yet."""
        try:
            if topic not in self.partitions:
                meta = self.c.list_topics(topic, timeout=10).topics.get(topic)
                if meta is None or meta.error is not None or not meta.partitions:
                    return 0
                self.partitions[topic] = list(meta.partitions)
            return sum(
                self.c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in self.partitions[topic]
            )
        except KafkaException:  # a topic created a moment ago: no leader yet
            self.partitions.pop(topic, None)
            return 0

    def close(self) -> None:
        self.c.close()


def _timeline(
    marks: Marks, watch: dict[str, tuple[int, int]], what: str, timeout: float = 600
) -> dict[str, tuple[float, float]]:
    """For each topic of ``watch`` (topic -> (records it held, records it must gain)),
    when its first new record and when its last one became readable (polled every 5 ms)."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(last) < len(watch):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        for t, (start, n) in watch.items():
            if t in last:
                continue
            high = marks.high(t)
            now = time.time()
            if high > start:
                first.setdefault(t, now)
            if high >= start + n:
                last[t] = now
        time.sleep(0.005)
    return {t: (first[t], last[t]) for t in watch}


def _bulk(pg: psycopg.Connection, table: str, n: int, marks: Marks, raw: str, gov: str) -> Bulk:
    """UPDATE the first ``n`` rows of ``table`` in one transaction and time its changes."""
    watch = {raw: (marks.high(raw), n), gov: (marks.high(gov), n)}
    t_commit = 0.0

    def update() -> None:
        nonlocal t_commit
        pg.execute(f"UPDATE {table} SET v = v + 1 WHERE id <= %s", (n,))
        t_commit = time.time()

    updater = threading.Thread(target=update)
    updater.start()
    seen = _timeline(marks, watch, "the bulk update's changes")
    updater.join()
    (_, raw_last), (g_first, g_last) = seen[raw], seen[gov]
    return Bulk(raw_last - t_commit, g_last - t_commit, g_last - g_first)


def _copy_topic(src: str, dst: str, count: int) -> None:
    c = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": f"bench-copy-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    p = Producer({"bootstrap.servers": KAFKA, "linger.ms": 20, "compression.type": "lz4"})
    c.subscribe([src])
    copied, idle = 0, 0
    while copied < count and idle < 50:
        batch = c.consume(5000, timeout=0.2)
        idle = 0 if batch else idle + 1
        for m in batch:
            if m.error() is None:
                p.produce(dst, m.value(), m.key())
                copied += 1
        p.poll(0)
    p.flush(60)
    c.close()


def _bridge_alone(name: str, table: str, raw: str, work: Path, total: int) -> None:
    alone = f"{name}x"
    cfg = parse_config(
        {
            "name": alone,
            "team": "bench",
            "connection": {"host": "127.0.0.1", "dbname": "app", "user": "cdc"},
            "tables": [{"name": table}],
        }
    )
    dst = cfg.raw_topic(cfg.tables[0])
    create_raw_topics(KAFKA, [dst])
    _copy_topic(raw, dst, total)
    registry = Registry.open(f"sqlite:///{work / 'alone.db'}")
    bridge = DatabaseBridge(
        cfg,
        registry=registry,
        kafka_bootstrap=KAFKA,
        password=None,
        metrics=CdcMetrics(CollectorRegistry()),
        catalog_available=False,
    )
    out = f"sg.cdc.{alone}.{table}"
    marks = Marks()
    bridge.start()
    try:
        ((first, last),) = _timeline(marks, {out: (0, total)}, "the bridge alone").values()
        print(
            f"bridge alone (own process, {total:,} raw changes): {last - first:.1f} s "
            f"({total / (last - first):,.0f} changes/s)"
        )
    finally:
        bridge.stop()
        marks.close()
        registry.close()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--latency-samples", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0, help="latency inserts per second")
    ap.add_argument("--runs", type=int, default=3, help="timed bulk updates (median printed)")
    ap.add_argument("--poll-interval-ms", type=int, help="the database's poll_interval_ms")
    ap.add_argument("--max-batch-size", type=int, help="the database's max_batch_size")
    ap.add_argument("--warmup", type=int, default=1, help="bulk updates before the timed ones")
    args = ap.parse_args()

    u = uuid.uuid4().hex[:8]
    name, table = f"bench{u}", f"bench_cdc_{u}"
    work = Path(tempfile.mkdtemp(prefix="sg-bench-cdc-"))
    cfg_dir = work / "cdc"
    cfg_dir.mkdir()
    (cfg_dir / f"{name}.yaml").write_text(
        yaml.safe_dump(
            {
                "name": name,
                "team": "bench",
                "connection": {
                    "host": "127.0.0.1",
                    "port": 55432,
                    "dbname": "app",
                    "user": "cdc",
                    "password_env": "BENCH_PG_PASSWORD",
                },
                "snapshot_mode": "no_data",
                **({"poll_interval_ms": args.poll_interval_ms} if args.poll_interval_ms else {}),
                **({"max_batch_size": args.max_batch_size} if args.max_batch_size else {}),
                "tables": [{"name": table}],
            }
        )
    )
    env = {
        **os.environ,
        "SLUICEGATE_CDC_CONFIG_DIR": str(cfg_dir),
        "BENCH_PG_PASSWORD": "cdc",
        "SLUICEGATE_ADMIN_TOKEN": "bench-" + u,
        "TZ": "UTC",
        "SLUICEGATE_KAFKA_BOOTSTRAP": KAFKA,
        "SLUICEGATE_CONNECT_URL": CONNECT,
    }
    governed, raw = f"sg.cdc.{name}.{table}", f"cdcraw.{name}.public.{table}"
    pg = psycopg.connect(PG_DSN, autocommit=True)
    pg.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v int NOT NULL, note text)")
    pg.execute(
        f"INSERT INTO {table} SELECT g, 0, 'row ' || g FROM generate_series(1, %s) g", (args.rows,)
    )
    server = None
    gov, rawc = Arrivals(governed), Arrivals(raw)
    try:
        server, _ = _start_server(work / "data", env)
        r = subprocess.run(
            [SLUICEGATE, "cdc", "apply", name], env=env, capture_output=True, text=True, check=False
        )
        if r.returncode:
            raise SystemExit(f"cdc apply failed: {r.stdout}{r.stderr}")
        gov.start()
        rawc.start()
        base = args.rows + 1
        pg.execute(f"INSERT INTO {table} VALUES (%s, 0, 'warm-up')", (base,))
        _wait(lambda: gov.count("c") >= 1, 120, "the first governed record")

        # 1. latency
        committed: dict[bytes, float] = {}
        interval = 1.0 / args.rate
        t_next = time.monotonic()
        for i in range(args.latency_samples):
            key = base + 1 + i
            t_next += interval
            time.sleep(max(0.0, t_next - time.monotonic()))
            pg.execute(f"INSERT INTO {table} VALUES (%s, 0, 'latency')", (key,))
            committed[str(key).encode()] = time.time()
        _wait(lambda: gov.count("c") >= 1 + args.latency_samples, 60, "latency records")
        arrived = {k: t for t, k, op in gov.snapshot() if op == "c" and k in committed}
        lat = [(arrived[k] - committed[k]) * 1000 for k in committed]
        print(
            f"latency, commit -> governed topic ({len(lat)} single-row transactions at "
            f"{args.rate:.0f}/s): p50 {_pct(lat, 0.5):.0f} ms, p99 {_pct(lat, 0.99):.0f} ms, "
            f"max {max(lat):.0f} ms"
        )
        raw_at = {_raw_id(k): t for t, k, _ in rawc.snapshot()}
        raw_lat = [(raw_at[k] - committed[k]) * 1000 for k in committed if k in raw_at]
        print(
            f"  of which commit -> raw Debezium record: p50 {_pct(raw_lat, 0.5):.0f} ms, "
            f"p99 {_pct(raw_lat, 0.99):.0f} ms, max {max(raw_lat):.0f} ms"
        )

        # 2. bulk update, end to end: warm-up runs first (a long-running Connect worker has
        # compiled its hot paths; a fresh JVM is still compiling them), then --runs timed runs
        n = args.rows
        gov.stop.set()  # from here on records are timed by their topics' watermarks
        rawc.stop.set()
        marks = Marks()
        warm = [_bulk(pg, table, n, marks, raw, governed) for _ in range(args.warmup)]
        timed = [_bulk(pg, table, n, marks, raw, governed) for _ in range(args.runs)]
        print(
            f"bulk UPDATE of {n:,} rows in one transaction, {args.runs} runs after {args.warmup} "
            "warm-up:"
        )
        for label, pick in (
            ("commit -> last raw Debezium record", lambda b: b.raw),
            ("commit -> last governed record    ", lambda b: b.governed),
            ("first -> last governed record     ", lambda b: b.bridge),
        ):
            rates = [n / pick(b) for b in timed]
            print(
                f"  {label}: median {n / statistics.median(pick(b) for b in timed):,.0f} changes/s"
                f" (runs {', '.join(f'{r:,.0f}' for r in rates)}"
                + (f"; warm-up {', '.join(f'{n / pick(b):,.0f}' for b in warm)}" if warm else "")
                + ")"
            )

        # 3. the bridge catching up inside a restarted server, on a full raw topic
        server.terminate()
        server.wait(60)
        server = None
        raw_before = marks.high(raw)
        pg.execute(f"UPDATE {table} SET v = v + 1 WHERE id <= %s", (n,))
        _wait(lambda: marks.high(raw) >= raw_before + n, 600, "raw changes (server stopped)")
        result: dict[str, tuple[float, float]] = {}
        watch = {governed: (marks.high(governed), n)}
        catching = threading.Thread(
            target=lambda: result.update(_timeline(marks, watch, "the catch-up"))
        )
        catching.start()
        server, _ = _start_server(work / "data", env)
        catching.join()
        first, last = result[governed]
        print(
            f"bridge catch-up of {n:,} changes already in the raw topic: "
            f"{last - first:.1f} s ({n / (last - first):,.0f} changes/s)"
        )
        server.terminate()
        server.wait(60)
        server = None
        total = marks.high(raw)
        marks.close()
        _bridge_alone(name, table, raw, work, total)
    finally:
        gov.stop.set()
        rawc.stop.set()
        subprocess.run(
            [SLUICEGATE, "cdc", "delete", name, "--drop-slot"],
            env=env,
            capture_output=True,
            check=False,
        )
        if server is not None:
            server.terminate()
            server.wait(60)
        pg.execute(f"DROP TABLE IF EXISTS {table}")
        pg.close()
        admin = AdminClient({"bootstrap.servers": KAFKA, "log_level": 0})
        topics = [
            t
            for t in admin.list_topics(timeout=10).topics
            if t.startswith(
                (
                    f"cdcraw.{name}.",
                    f"sg.cdc.{name}.",
                    f"cdcraw.{name}x.",
                    f"sg.cdc.{name}x.",
                    f"__debezium-heartbeat.cdcraw.{name}",
                )
            )
        ]
        if topics:
            for fut in admin.delete_topics(topics, operation_timeout=30).values():
                try:
                    fut.result(30)
                except Exception as exc:  # best effort: report, keep cleaning
                    print(f"could not delete a topic: {exc}")


if __name__ == "__main__":
    main()
