"""Schema-by-id lookups per second over HTTP, the path every deserializer takes.

Starts a real ``sluicegate serve`` (own data directory, free port), registers SCHEMAS
schemas, then for each of ROUNDS rounds drives DURATION seconds of keep-alive HTTP/1.1
requests over CONNECTIONS concurrent connections against:

- ``GET /healthz``: the floor of a routed FastAPI call on this server and machine (no
  auth, no lookup);
- ``GET /subjects/{s}/versions/latest``: a routed, authenticated registry read;
- ``GET /schemas/ids/{id}``: authenticated (Basic, as Confluent clients send it) lookups
  cycling over every registered id, each answer checked once against the registry. These
  are answered by ``registry.http.SchemaLookupFastPath`` from precomputed bytes before
  routing, which is why they can beat the routed floor.

The load generator is a minimal asyncio HTTP/1.1 client in this script (one request in
flight per connection), because a general-purpose Python client costs more CPU per
request than the server and would measure itself. Client and server share the machine's
cores. Prints the median requests/s of the rounds per endpoint. Usage::

    .venv/bin/python bench/registry_lookup.py [--duration 5] [--rounds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, token: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "SLUICEGATE_PORT": str(port),
        "SLUICEGATE_DATA_DIR": str(data_dir),
        "SLUICEGATE_ADMIN_TOKEN": token,
    }
    with (data_dir / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sluicegate", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((data_dir / "serve.log").read_text()[-3000:])
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("sluicegate serve did not become healthy")


def register_schemas(url: str, token: str, count: int) -> dict[int, str]:
    """Register ``count`` Avro schemas; returns id -> schema text as served."""
    out: dict[int, str] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        for i in range(count):
            schema = {
                "type": "record",
                "name": f"Event{i}",
                "namespace": "bench",
                "fields": [{"name": f"f{j}", "type": "string"} for j in range(10)],
            }
            r = c.post(f"/subjects/bench.s{i}/versions", json={"schema": json.dumps(schema)})
            r.raise_for_status()
            sid = r.json()["id"]
            out[sid] = c.get(f"/schemas/ids/{sid}").json()["schema"]
    return out


async def _connection(
    host: str,
    port: int,
    requests: list[bytes],
    stop: float,
    counts: list[int],
    bodies: dict[bytes, bytes],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    try:
        while time.perf_counter() < stop:
            req = requests[i % len(requests)]
            i += 1
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            if status != b"200":
                raise RuntimeError(f"{req!r} -> {head!r} {body!r}")
            if req not in bodies:
                bodies[req] = body
            counts[0] += 1
    finally:
        writer.close()


async def _load(
    url: str, paths: list[str], auth: str | None, connections: int, duration: float
) -> tuple[float, dict[bytes, bytes]]:
    host, port = url.removeprefix("http://").split(":")
    extra = f"Authorization: {auth}\r\n" if auth else ""
    requests = [
        f"GET {p} HTTP/1.1\r\nHost: {host}\r\n{extra}Accept: application/json\r\n\r\n".encode()
        for p in paths
    ]
    counts = [0]
    bodies: dict[bytes, bytes] = {}
    start = time.perf_counter()
    stop = start + duration
    await asyncio.gather(
        *[
            _connection(host, int(port), requests[k:] + requests[:k], stop, counts, bodies)
            for k in range(connections)
        ]
    )
    return counts[0] / (time.perf_counter() - start), bodies


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--schemas", type=int, default=50)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    token = "bench-" + uuid.uuid4().hex
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp), token)
        try:
            served = register_schemas(url, token, args.schemas)
            basic = "Basic " + base64.b64encode(f"admin:{token}".encode()).decode()
            targets = {
                "GET /healthz (HTTP floor)": (["/healthz"], None),
                "GET /subjects/{s}/versions/latest": (
                    [f"/subjects/bench.s{i}/versions/latest" for i in range(len(served))],
                    basic,
                ),
                "GET /schemas/ids/{id}": ([f"/schemas/ids/{i}" for i in served], basic),
            }
            results: dict[str, list[float]] = {name: [] for name in targets}
            for _ in range(args.rounds):
                for name, (paths, auth) in targets.items():
                    rate, bodies = asyncio.run(
                        _load(url, paths, auth, args.connections, args.duration)
                    )
                    results[name].append(rate)
                    if name.startswith("GET /schemas/ids"):  # answers are the registered schemas
                        for req, body in bodies.items():
                            sid = int(req.split(b" ")[1].rsplit(b"/", 1)[1])
                            assert json.loads(body)["schema"] == served[sid], req
        finally:
            proc.terminate()
            proc.wait(20)
    print(
        f"machine: {os.cpu_count()} cores shared by client and server; "
        f"{args.connections} keep-alive connections, {args.rounds} rounds x {args.duration:g} s"
    )
    print(f"{'endpoint':36} {'median req/s':>13} {'rounds':>30}")
    for name, rates in results.items():
        rounds = ", ".join(f"{r:,.0f}" for r in rates)
        print(f"{name:36} {statistics.median(rates):>13,.0f} {rounds:>30}")
    floor = statistics.median(results["GET /healthz (HTTP floor)"])
    lookups = statistics.median(results["GET /schemas/ids/{id}"])
    print(f"schema-by-id lookups: {lookups / floor:.1f}x the routed /healthz floor")


if __name__ == "__main__":
    main()
