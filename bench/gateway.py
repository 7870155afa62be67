"""Gateway throughput and latency, side by side with the raw confluent-kafka producer
sending the same events (the ceiling), in one run.

    .venv/bin/python bench/gateway.py [--seconds 3] [--rounds 3]

Starts a `sluicegate serve --role gateway` of its own (temporary data directory, the running
local Kafka; `--all-roles` for `--role all`), registers a JSON subject with ~1 KB events,
then measures, alternating rounds:

- batch: events/s through POST /v1/events/{subject}/batch (1,000 events a request,
  a few connections) up to Kafka's acks, vs. the raw producer producing and flushing;
- single: requests/s of POST /v1/events/{subject} with many concurrent connections, vs. the
  raw producer with as many single records in flight, each awaited;
- fixed rate: p50/p99 latency at a fixed 1,000 requests/s (open loop: latency counts from
  the scheduled send time), vs. the raw producer at the same rate.

Prints the median of each measurement over the rounds and the gateway/raw ratio, and each
rate per CPU-second of the process doing the work. The HTTP
load generator is a minimal keep-alive HTTP/1.1 client on uvloop, so the client side costs
as little CPU as possible on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

# This file is named like the package it measures: keep its own folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import httpx  # noqa: E402
import orjson  # noqa: E402
import uvloop  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

from gateway import producer_config  # noqa: E402
from sluicegate.envelope import Envelope, Source, frame, iso_to_ms, new_event_id, now_ms  # noqa: E402

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "ts": {"type": "string", "format": "date-time"},
        "amount": {"type": "number", "minimum": 0},
        "customer": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "email": {"type": "string"},
            },
            "required": ["id", "name"],
        },
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string"},
                    "qty": {"type": "integer", "minimum": 1},
                    "price": {"type": "number"},
                },
                "required": ["sku", "qty"],
            },
        },
        "note": {"type": "string"},
    },
    "required": ["order_id", "ts", "amount", "customer", "items"],
    "additionalProperties": False,
}


def make_event(i: int) -> dict[str, Any]:
    event = {
        "order_id": f"order-{i:08d}",
        "ts": "2026-03-01T10:00:00.000Z",
        "amount": 12.5 + i % 100,
        "customer": {
            "id": i % 50_000,
            "name": f"customer {i % 50_000}",
            "email": f"c{i % 50_000}@example.com",
        },
        "items": [
            {"sku": f"sku-{(i + k) % 997:05d}", "qty": 1 + k, "price": 3.25 * k} for k in range(6)
        ],
        "note": "",
    }
    pad = 1000 - len(orjson.dumps(event))
    event["note"] = "n" * max(0, pad)
    return event


# -- a minimal HTTP/1.1 keep-alive client -------------------------------------------------
class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def post(self, head: bytes, body: bytes) -> int:
        self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = 0
        for line in raw.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def request_head(host: str, port: int, path: str, token: str, content_type: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: "
    ).encode()


# -- the raw producer (ceiling) -------------------------------------------------------------
class RawProducer:
    """confluent-kafka with the gateway's settings, a poll thread, and asyncio futures."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer(producer_config(bootstrap, 10.0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    def record(
        self, subject: str, schema_id: int, event: dict[str, Any]
    ) -> tuple[bytes, bytes, list]:
        env = Envelope(
            new_event_id(),
            subject,
            schema_id,
            1,
            event["order_id"],
            iso_to_ms(event["ts"]),
            now_ms(),
            Source.HTTP,
            "bench",
            event,
        )
        return env.entity_key.encode(), frame(schema_id, orjson.dumps(event)), env.headers()

    async def send_one(self, topic: str, key: bytes, value: bytes, headers: list) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def done(err: Any, _msg: Any) -> None:
            loop.call_soon_threadsafe(fut.set_result, err)

        self.producer.produce(topic, value, key, headers=headers, on_delivery=done)
        err = await fut
        if err is not None:
            raise RuntimeError(err)

    def close(self) -> None:
        self.producer.flush(30)
        self._stop.set()
        self._thread.join()


# -- measurements ---------------------------------------------------------------------------
async def gateway_batch(
    url: tuple[str, int],
    path: str,
    token: str,
    bodies: list[bytes],
    per_body: int,
    seconds: float,
    conns: int = 3,
) -> float:
    host, port = url
    head = request_head(host, port, path, token, "application/json")
    accepted = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal accepted
        c = await Conn.open(host, port)
        i = w
        while time.perf_counter() < deadline:
            status = await c.post(head, bodies[i % len(bodies)])
            if status != 202:
                raise RuntimeError(f"batch answered {status}")
            accepted += per_body
            i += conns
        c.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(conns)))
    return accepted / (time.perf_counter() - start)


def raw_batch(
    raw: RawProducer, topic: str, records: list[tuple[bytes, bytes, list]], seconds: float
) -> float:
    sent = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for key, value, headers in records:
            while True:
                try:
                    raw.producer.produce(topic, value, key, headers=headers)
                    break
                except BufferError:
                    raw.producer.poll(0.001)
        raw.producer.flush(30)  # every record acknowledged
        sent += len(records)
    return sent / (time.perf_counter() - start)


async def gateway_single(
    url: tuple[str, int],
    path: str,
    token: str,
    bodies: list[bytes],
    seconds: float,
    conns: int = 48,
) -> float:
    host, port = url
    head = request_head(host, port, path, token, "application/json")
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        c = await Conn.open(host, port)
        i = w
        while time.perf_counter() < deadline:
            status = await c.post(head, bodies[i % len(bodies)])
            if status != 202:
                raise RuntimeError(f"single answered {status}")
            done += 1
            i += conns
        c.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(conns)))
    return done / (time.perf_counter() - start)


async def raw_single(
    raw: RawProducer,
    topic: str,
    records: list[tuple[bytes, bytes, list]],
    seconds: float,
    inflight: int = 48,
) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = w
        while time.perf_counter() < deadline:
            await raw.send_one(topic, *records[i % len(records)])
            done += 1
            i += inflight

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(inflight)))
    return done / (time.perf_counter() - start)


async def fixed_rate(send: Callable[[int], Any], rate: int, seconds: float) -> tuple[float, float]:
    """Open loop at ``rate``/s: p50 and p99 latency in ms, from each scheduled send time."""
    latencies: list[float] = []
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05

    async def one(i: int, at: float) -> None:
        await send(i)
        latencies.append(time.perf_counter() - at)

    tasks = []
    for i in range(total):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, at)))
    await asyncio.gather(*tasks)
    q = statistics.quantiles(latencies, n=100)
    return q[49] * 1000, q[98] * 1000


async def gateway_fixed(
    url: tuple[str, int], path: str, token: str, bodies: list[bytes], rate: int, seconds: float
) -> tuple[float, float]:
    host, port = url
    head = request_head(host, port, path, token, "application/json")
    pool: list[Conn] = [await Conn.open(host, port) for _ in range(64)]

    async def send(i: int) -> None:
        c = pool.pop() if pool else await Conn.open(host, port)
        status = await c.post(head, bodies[i % len(bodies)])
        pool.append(c)
        if status != 202:
            raise RuntimeError(f"single answered {status}")

    result = await fixed_rate(send, rate, seconds)
    for c in pool:
        c.close()
    return result


# -- driver ---------------------------------------------------------------------------------
def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_serve(data_dir: Path, port: int, token: str, all_roles: bool) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SLUICEGATE_PORT": str(port),
        "SLUICEGATE_DATA_DIR": str(data_dir),
        "SLUICEGATE_ADMIN_TOKEN": token,
        "TZ": "UTC",
    }
    command = ["-m", "sluicegate", "serve", "--role", "all" if all_roles else "gateway"]
    log = (data_dir / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, *command], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("sluicegate serve did not start; see " + str(data_dir / "serve.log"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="Duration of each measurement.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds (medians are printed).")
    parser.add_argument("--rate", type=int, default=1000, help="Fixed request rate per second.")
    parser.add_argument(
        "--kafka", default=os.environ.get("SLUICEGATE_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    )
    parser.add_argument(
        "--all-roles",
        action="store_true",
        help="Measure plain `sluicegate serve` (materializer running in the same process) "
        "instead of the gateway role alone.",
    )
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="sg-bench-"))
    port, token = _free_port(), "bench-" + uuid.uuid4().hex
    proc = start_serve(data_dir, port, token, args.all_roles)
    subject = f"bench{uuid.uuid4().hex[:8]}.order"
    topic = "sg." + subject
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        ) as http:
            r = http.post(
                f"/v1/subjects/{subject}/versions",
                json={
                    "schema": SCHEMA,
                    "schemaType": "JSON",
                    "metadata": {"owner": "bench", "entity_key": ["order_id"], "event_time": "ts"},
                },
            )
            r.raise_for_status()
            schema_id = r.json()["id"]
            warm = http.post(f"/v1/events/{subject}", json=make_event(0))
            assert warm.status_code == 202, warm.text
        events = [make_event(i) for i in range(5000)]
        size = statistics.mean(len(orjson.dumps(e)) for e in events)
        bodies_batch = [orjson.dumps(events[i : i + 1000]) for i in range(0, 5000, 1000)]
        bodies_single = [orjson.dumps(e) for e in events]
        raw = RawProducer(args.kafka)
        records = [raw.record(subject, schema_id, e) for e in events]
        url = ("127.0.0.1", port)
        results: dict[str, list[float]] = {}

        def note(name: str, value: float) -> None:
            results.setdefault(name, []).append(value)

        def server_cpu() -> float:
            return process_cpu_seconds(proc.pid)

        async def timed(name: str, rate: Any, cpu: Callable[[], float]) -> None:
            """Note ``rate`` (awaited if needed) and the rate per CPU-second it cost."""
            c0, t0 = cpu(), time.perf_counter()
            value = await rate if asyncio.iscoroutine(rate) else rate()
            used = cpu() - c0
            note(name, value)
            note(name + " per cpu-s", value * (time.perf_counter() - t0) / max(used, 1e-9))

        async def run_round() -> None:
            await timed(
                "raw batch", lambda: raw_batch(raw, topic, records, args.seconds), time.process_time
            )
            await timed(
                "gateway batch",
                gateway_batch(
                    url, f"/v1/events/{subject}/batch", token, bodies_batch, 1000, args.seconds
                ),
                server_cpu,
            )
            await timed(
                "raw single", raw_single(raw, topic, records, args.seconds), time.process_time
            )
            await timed(
                "gateway single",
                gateway_single(url, f"/v1/events/{subject}", token, bodies_single, args.seconds),
                server_cpu,
            )
            p50, p99 = await fixed_rate(
                lambda i: raw.send_one(topic, *records[i % len(records)]), args.rate, args.seconds
            )
            note("raw p50", p50)
            note("raw p99", p99)
            p50, p99 = await gateway_fixed(
                url, f"/v1/events/{subject}", token, bodies_single, args.rate, args.seconds
            )
            note("gateway p50", p50)
            note("gateway p99", p99)

        for n in range(args.rounds):
            uvloop.run(run_round())
            print(f"round {n + 1}/{args.rounds} done", file=sys.stderr)
        raw.close()
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    mode = "sluicegate serve (all roles)" if args.all_roles else "gateway role"
    print(
        f"\n{mode} vs raw confluent-kafka producer: {size:.0f}-byte JSON events, "
        f"acks=all, idempotent; medians of {args.rounds} rounds of {args.seconds:g} s; "
        f"fixed rate {args.rate}/s; {os.cpu_count()} CPUs\n"
    )
    rows = [
        ("batch events/s", "batch"),
        ("  per CPU-second", "batch per cpu-s"),
        ("single requests/s", "single"),
        ("  per CPU-second", "single per cpu-s"),
        (f"p50 @{args.rate}/s (ms)", "p50"),
        (f"p99 @{args.rate}/s (ms)", "p99"),
    ]
    print(f"{'measure':<22}{'gateway':>12}{'raw producer':>15}{'gateway/raw':>13}")
    for label, key in rows:
        gw, rw = med["gateway " + key], med["raw " + key]
        print(f"{label:<22}{gw:>12,.1f}{rw:>15,.1f}{gw / rw:>13.2f}")
    print(
        "\nper CPU-second: the rate divided by the CPU time it cost the process doing the work "
        "(the gateway server; the raw producer's own process), the broker excluded; less "
        "sensitive to other load on the machine than the rates."
    )


if __name__ == "__main__":
    main()
