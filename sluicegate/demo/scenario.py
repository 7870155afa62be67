"""The demo's story, step by step: a Reddit-like world whose databases are captured by CDC
and whose services post events through the gateway, a schema evolving mid-run, features
applied mid-run (their backfill shows), online features in one round trip, and a
point-in-time training set with its leakage report."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from gateway.client import SluicegateClient
from sluicegate.demo import database, reset
from sluicegate.demo.server import ServeProcess, start_serve
from sluicegate.demo.workload import UPVOTED, VIEWED, Item, history, negatives, upgrade_upvotes
from sluicegate.demo.world import make_world
from sluicegate.envelope import iso_to_ms
from sluicegate.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "reddit"
FEATURES = [
    "user_upvoted_posts",
    "user_upvoted_posts_7d",
    "user_views_1d",
    "user_communities",
    "post_upvotes",
    "post_comments_1d",
]


@dataclass
class Options:
    events: int = 400_000
    users: int = 2_000
    communities: int = 20
    posts: int = 5_000
    days: int = 30
    seed: int = 7
    data_dir: Path = ROOT / ".run" / "demo"
    out_dir: Path = ROOT / "out" / "demo"
    port: int | None = None
    senders: int = 2


@dataclass
class Tally:
    """What the demo did, counted as it happened."""

    accepted: int = 0
    rejected: int = 0
    by_subject: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, results: list[dict[str, Any]], items: list[Item]) -> None:
        with self.lock:
            for r in results:
                if r.get("status") == 202 or r.get("accepted") is True:
                    self.accepted += 1
                    subject = items[r["index"]].subject
                    self.by_subject[subject] = self.by_subject.get(subject, 0) + 1
                else:
                    self.rejected += 1


def say(step: str, text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {step:<11} {text}", flush=True)


def sql(server: ServeProcess, query: str) -> list[list[Any]]:
    with server.client() as http:
        r = http.post("/v1/sql", json={"query": query})
        r.raise_for_status()
        return list(r.json()["rows"])


def loaded(server: ServeProcess) -> tuple[int, int]:
    """Rows in ``events`` from the gateway and from CDC."""
    rows = sql(server, "SELECT countIf(source = 'http'), countIf(source = 'cdc') FROM events")
    return int(rows[0][0]), int(rows[0][1])


class Monitor(threading.Thread):
    """Samples throughput and lag once a second: events the gateway accepted against rows
    that reached ClickHouse."""

    def __init__(self, server: ServeProcess, tally: Tally) -> None:
        super().__init__(name="demo-monitor", daemon=True)
        self.server, self.tally, self.stop_event = server, tally, threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.stop_event.wait(1.0):
            try:
                http_rows, cdc_rows = loaded(self.server)
            except httpx.HTTPError:
                continue
            with self.tally.lock:
                accepted = self.tally.accepted
            self.tally.samples.append(
                {
                    "t": time.monotonic() - self.started,
                    "accepted": accepted,
                    "loaded": http_rows,
                    "cdc": cdc_rows,
                    "lag": max(0, accepted - http_rows),
                }
            )

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)


def _pg_dsns() -> tuple[str, str]:
    host = os.environ.get("SLUICEGATE_PG_HOST", "127.0.0.1")
    port = os.environ.get("SLUICEGATE_PG_PORT", "55432")
    db = os.environ.get("SLUICEGATE_PG_DB", "app")
    user = os.environ.get("SLUICEGATE_PG_USER", "cdc")
    password = os.environ.get("SLUICEGATE_PG_PASSWORD", "cdc")
    app = f"host={host} port={port} dbname={db} user={user} password={password}"
    return app, f"host={host} port={port} dbname={db} user=postgres"


def _register_schemas(http: httpx.Client) -> None:
    specs = [
        (VIEWED, "post_viewed.json", "JSON", ["user_id"], "viewed_at", "A user opened a post."),
        (UPVOTED, "upvoted.v1.avsc", "AVRO", ["user_id"], "upvoted_at", "A user upvoted a post."),
        (
            "reddit.commented",
            "commented.json",
            "JSON",
            ["user_id"],
            "commented_at",
            "A user commented on a post.",
        ),
    ]
    for subject, file, kind, key, time_field, description in specs:
        r = http.post(
            f"/subjects/{subject}/versions",
            json={"schema": (EXAMPLES / "schemas" / file).read_text(), "schemaType": kind},
        )
        r.raise_for_status()
        http.put(
            f"/v1/subjects/{subject}/metadata",
            json={
                "owner": "web",
                "entity_key": key,
                "event_time": time_field,
                "description": description,
                "tags": ["reddit"],
            },
        ).raise_for_status()
        say(
            "registry",
            f"{subject} v1 ({kind}) id={r.json()['id']}, key={key[0]}, time={time_field}",
        )


def _evolve_upvote(http: httpx.Client) -> None:
    body = {
        "schema": (EXAMPLES / "schemas" / "upvoted.v2.avsc").read_text(),
        "schemaType": "AVRO",
        "migration": json.loads((EXAMPLES / "schemas" / "upvoted.v2.migration.json").read_text()),
    }
    r = http.post(f"/v1/subjects/{UPVOTED}/versions", json=body)
    r.raise_for_status()
    answer = r.json()
    say(
        "registry",
        f"{UPVOTED} v{answer['version']}: platform is required now; migration "
        f"{body['migration']} {'accepted' if answer.get('migrated') else 'registered'}",
    )
    for message in answer.get("messages", [])[:3]:
        say("", f"  the level alone would refuse: {message}")


def _post(client: SluicegateClient, items: list[Item], tally: Tally) -> None:
    results = client.post_many([i.request() for i in items])
    tally.add(results, items)


def _wait_loaded(
    server: ServeProcess, tally: Tally, expected_cdc: int, timeout: float = 180
) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while True:
        http_rows, cdc_rows = loaded(server)
        if http_rows >= tally.accepted and cdc_rows >= expected_cdc:
            return http_rows, cdc_rows
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"ClickHouse has {http_rows}/{tally.accepted} events and "
                f"{cdc_rows}/{expected_cdc} changes after {timeout:.0f} s"
            )
        time.sleep(0.5)


def run(options: Options) -> dict[str, Any]:
    """Play the whole story; returns the summary (also written to OUT/summary.json)."""
    settings = Settings()
    app_dsn, super_dsn = _pg_dsns()
    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()

    say("reset", "removing what an earlier demo run left (connector, slot, topics, tables, data)")
    reset.reset(
        settings.connect_url,
        settings.kafka_bootstrap,
        super_dsn,
        options.data_dir,
        cdc_name="reddit",
        subject_prefixes=("reddit.",),
    )
    database.reset(app_dsn)

    world = make_world(options.seed, options.users, options.communities, options.posts)
    seeded = database.seed(app_dsn, world)
    say("postgres", f"seeded reddit.users/communities/memberships/posts: {seeded} rows")

    server = start_serve(
        options.data_dir / "sg",
        port=options.port,
        ready_path="/readyz",
        extra_env={
            "SLUICEGATE_CDC_CONFIG_DIR": str(EXAMPLES / "cdc"),
            "REDDIT_DB_PASSWORD": app_dsn.split("password=")[1],
            # a shared broker may carry other registries' topics: load only the demo's subjects
            "SLUICEGATE_MATERIALIZE_TOPICS": r"^sg\.(reddit|cdc\.reddit)\..*",
        },
    )
    say(
        "serve",
        f"sluicegate serve on {server.url} (registry, gateway, materializer, features, CDC bridge)",
    )
    try:
        return _story(options, server, world, app_dsn, seeded, began)
    finally:
        server.stop()
        say("serve", "stopped")


def _story(
    options: Options, server: ServeProcess, world: Any, app_dsn: str, seeded: int, began: float
) -> dict[str, Any]:
    out = options.out_dir
    applied = server.cli("cdc", "apply", "reddit", check=False)
    if applied.returncode != 0:
        raise RuntimeError(f"cdc apply failed:\n{applied.stdout}{applied.stderr}")
    say("cdc", applied.stdout.strip().splitlines()[-1] if applied.stdout.strip() else "applied")

    with server.client() as admin:
        web_token = admin.post("/v1/tokens", json={"team": "web"}).json()["token"]
        with server.client(web_token) as web:
            _register_schemas(web)

    now = datetime.now(UTC).replace(microsecond=0)
    items = history(
        world, options.events, now - timedelta(days=options.days), now - timedelta(minutes=1)
    )
    say(
        "workload",
        f"{len(items)} events over {options.days} days of simulated time, "
        f"{options.users} users (zipf), {len(world.posts)} posts (zipf), weekend-heavy",
    )

    tally = Tally()
    monitor = Monitor(server, tally)
    changes = database.RowChanges(app_dsn, world)
    monitor.start()
    changes.start()
    client = SluicegateClient(server.url, web_token, batch_size=1000)
    chunk = 2000
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    evolve_at, features_at = int(len(chunks) * 0.4), int(len(chunks) * 0.6)
    feature_job: threading.Thread | None = None
    feature_output: dict[str, str] = {}
    posting_started = time.monotonic()
    with ThreadPoolExecutor(options.senders) as pool:
        for n, part in enumerate(chunks):
            if n == evolve_at:
                with server.client(web_token) as web:
                    _evolve_upvote(web)
                changes.rename_community(1, world.communities[0] + "_renamed")
                say("postgres", f"renamed community 1 to {world.communities[0]}_renamed")
            if n == features_at:
                feature_job = threading.Thread(
                    target=_apply_features, args=(server, feature_output)
                )
                feature_job.start()
            if n >= evolve_at:
                part = upgrade_upvotes(world, part)  # noqa: PLW2901 - the batch as posted
            list(
                pool.map(
                    lambda p: _post(client, p, tally),
                    [part[: len(part) // 2], part[len(part) // 2 :]],
                )
            )
            if n % max(1, len(chunks) // 10) == 0 or n == len(chunks) - 1:
                rate = tally.accepted / max(1e-9, time.monotonic() - posting_started)
                last = tally.samples[-1] if tally.samples else {"loaded": 0, "lag": 0}
                say(
                    "gateway",
                    f"{tally.accepted:>8} accepted, {tally.rejected} rejected, "
                    f"{rate:,.0f} events/s; ClickHouse {last['loaded']} rows, lag {last['lag']}",
                )
    posting_s = time.monotonic() - posting_started
    client.close()
    if feature_job is not None:
        feature_job.join()
    if feature_output.get("failed"):
        raise RuntimeError(f"features apply failed:\n{feature_output['text']}")
    for line in feature_output.get("text", "").strip().splitlines()[-8:]:
        say("features", line)
    changes.stop()
    expected_cdc = seeded + changes.statements
    http_rows, cdc_rows = _wait_loaded(server, tally, expected_cdc)
    monitor.stop()
    say("clickhouse", f"events: {http_rows} from the gateway, {cdc_rows} from CDC (all loaded)")

    freshness = _freshness(server, world)
    online = _online(server, world)
    training = _training_set(server, world, items, out)
    counts = {
        row[0]: int(row[1])
        for row in sql(
            server, "SELECT subject, count() FROM events GROUP BY subject ORDER BY subject"
        )
    }
    upvotes = sql(
        server,
        f"SELECT countIf(schema_version = 1), countIf(schema_version = 2), "
        f"countIf(schema_version = 1 AND payload_version = 2) FROM events "
        f"WHERE subject = '{UPVOTED}'",
    )[0]
    dead = int(sql(server, "SELECT count() FROM dead_letters")[0][0])
    console = _console(server, out)
    summary = {
        "events_accepted": tally.accepted,
        "events_rejected": tally.rejected,
        "accepted_by_subject": tally.by_subject,
        "cdc_changes": expected_cdc,
        "cdc_rows_seeded": seeded,
        "rows_in_clickhouse": {"http": http_rows, "cdc": cdc_rows, "by_subject": counts},
        "upvotes": {
            "posted_v1": int(upvotes[0]),
            "posted_v2": int(upvotes[1]),
            "v1_upcast_to_v2": int(upvotes[2]),
        },
        "dead_letters": dead,
        "throughput_events_per_s": round(tally.accepted / posting_s),
        "max_lag_events": max((s["lag"] for s in tally.samples), default=0),
        "freshness_ms": freshness,
        "online": online,
        "training_set": training,
        "renamed_community": changes.renamed,
        "console": console,
        "wall_time_s": round(time.monotonic() - began, 1),
    }
    from sluicegate.demo.report import chart, print_summary

    summary["chart"] = str(chart(tally.samples, out / "throughput_lag.png"))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print_summary(summary)
    return summary


def _console(server: ServeProcess, out: Path) -> dict[str, Any]:
    """The console's URL, and screenshots of its pages in headless Chromium (when it is
    installed: `make browser`)."""
    url = f"{server.url}/ui"
    say("console", f"{url} (sign in with the admin token in {server.data_dir / 'admin.token'})")
    pages = {
        "subjects": "/ui/subjects?q=reddit",
        "subject": f"/ui/subjects/{UPVOTED}",
        "feature": "/ui/features/user_upvoted_posts",
        "lineage": "/ui/lineage?q=reddit",
    }
    shots: dict[str, str] = {}
    try:
        from console.browser import headless_chromium, sign_in

        driver = headless_chromium()
    except Exception as exc:  # no browser here: the URL is still printed
        say("console", f"no screenshot ({type(exc).__name__}: {exc}); `make browser` installs one")
        return {"url": url, "screenshots": shots}
    try:
        sign_in(driver, server.url, server.admin_token)
        for name, path in pages.items():
            driver.get(server.url + path)
            target = out / f"console_{name}.png"
            driver.save_screenshot(str(target))
            shots[name] = str(target)
        say("console", f"screenshots: {', '.join(shots.values())}")
    finally:
        driver.quit()
    return {"url": url, "screenshots": shots}


def _apply_features(server: ServeProcess, output: dict[str, str]) -> None:
    files = sorted(str(p) for p in (EXAMPLES / "features").glob("*.yaml"))
    result = server.cli("features", "apply", *files, check=False, timeout=900)
    output["text"] = result.stdout + result.stderr
    if result.returncode != 0:
        output["failed"] = "yes"


def _freshness(server: ServeProcess, world: Any, probes: int = 5) -> dict[str, float]:
    """Milliseconds from the gateway's accept to the new value in an online read."""
    user = 1
    times = []
    with server.client() as http:
        for n in range(probes):
            before = http.get(
                f"/v1/features/user/{user}", params={"names": "user_upvoted_posts"}
            ).json()["features"]["user_upvoted_posts"]
            post = max(world.posts) + 1000 + n  # a post the user has never upvoted
            event = {
                "user_id": user,
                "post_id": post,
                "upvoted_at": datetime.now(UTC).isoformat(),
                "platform": "web",
            }
            r = http.post(f"/v1/events/{UPVOTED}", json=event)
            r.raise_for_status()
            accepted = time.monotonic()
            while time.monotonic() - accepted < 30:
                now = http.get(
                    f"/v1/features/user/{user}", params={"names": "user_upvoted_posts"}
                ).json()["features"]["user_upvoted_posts"]
                if now > before:
                    times.append((time.monotonic() - accepted) * 1000)
                    break
                time.sleep(0.02)
    times.sort()
    return (
        {"p50": round(times[len(times) // 2], 1), "max": round(times[-1], 1), "probes": len(times)}
        if times
        else {}
    )


def _online(server: ServeProcess, world: Any) -> dict[str, Any]:
    """One user's features in one round trip (the heaviest user: id 1 under the zipf draw)."""
    user = 1
    with server.client() as http:
        started = time.monotonic()
        r = http.get(
            f"/v1/features/user/{user}",
            params={"names": ",".join(f for f in FEATURES if f.startswith("user_"))},
        )
        took = (time.monotonic() - started) * 1000
        r.raise_for_status()
        values = r.json()["features"]
    say("online", f"user {user} in one round trip ({took:.1f} ms): {json.dumps(values)[:200]}")
    return {"user": user, "features": values, "round_trip_ms": round(took, 1)}


def _training_set(server: ServeProcess, world: Any, items: list[Item], out: Path) -> dict[str, Any]:
    """'Will this user upvote this post?': every upvote a positive, as many sampled views
    negatives; features as of each observation's time."""
    positives = [i for i in items if i.subject == UPVOTED and not i.invalid]
    rows = [(i, 1) for i in positives] + [(i, 0) for i in negatives(world, items, len(positives))]
    observations = []
    for item, label in rows:
        at = item.event["upvoted_at"] if item.subject == UPVOTED else item.event["viewed_at"]
        observations.append(
            {
                "entities": {
                    "user": str(item.event["user_id"]),
                    "post": str(item.event["post_id"]),
                },
                "time": at,
                "labels": {
                    "upvoted": label,
                    "day_of_week": datetime.fromtimestamp(iso_to_ms(at) / 1000, UTC).isoweekday(),
                },
            }
        )
    with server.client(timeout=600) as http:
        for start in range(0, len(observations), 5000):
            http.post(
                "/v1/observations",
                json={"spine": "will_upvote", "observations": observations[start : start + 5000]},
            ).raise_for_status()
        request = {"spine": {"observations": "will_upvote"}, "features": FEATURES}
        sql_text = http.post("/v1/training-sets", json={**request, "format": "sql"})
        sql_text.raise_for_status()
        (out / "training_set.sql").write_text(sql_text.text)
        started = time.monotonic()
        r = http.post("/v1/training-sets", json={**request, "format": "parquet"})
        r.raise_for_status()
        took = time.monotonic() - started
        (out / "training_set.parquet").write_bytes(r.content)
        report = http.post("/v1/training-sets", json={**request, "format": "report"}).json()
    (out / "training_set.report.json").write_text(json.dumps(report, indent=2))
    import pyarrow.parquet as pq

    table = pq.read_table(out / "training_set.parquet")
    say(
        "training",
        f"{table.num_rows} rows x {table.num_columns} columns in {took:.1f} s -> "
        f"{out / 'training_set.parquet'}; leakage audit: {json.dumps(report.get('leakage_audit', report.get('leakage')))[:160]}",
    )
    return {
        "rows": table.num_rows,
        "columns": table.column_names,
        "seconds": round(took, 2),
        "path": str(out / "training_set.parquet"),
        "report": str(out / "training_set.report.json"),
        "sql": str(out / "training_set.sql"),
    }
