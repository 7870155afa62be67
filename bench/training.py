"""Training-set extraction benchmark: OBS observations x 10 features over EVENTS events.

Sluicegate's extraction (materializer.training on chDB, the real SQL, FINAL reads of
`events`, the report and its leakage audit included) side by side with DuckDB computing
the same point-in-time values from the same data in the same run:

- ``duckdb-range``: the query a data scientist writes — ``obs LEFT JOIN events ON entity
  AND ts < t GROUP BY obs`` with FILTER clauses for the windows;
- ``duckdb-asof``: the same strategy as Sluicegate in DuckDB — running window aggregates +
  ``ASOF JOIN`` for lifetime features, a window-bounded range join for windowed ones;
- ``duckdb-window``: the same for lifetime features, and windowed ones as framed window
  aggregates over events and spine rows in one stream (DuckDB's segment trees; a hot
  entity costs it no cross product).

Every DuckDB result is compared value by value with Sluicegate's (mismatches are printed;
the run fails on any). Usage::

    .venv/bin/python bench/training.py                 # 1,000,000 x 10 over 10,000,000
    .venv/bin/python bench/training.py --scale 0.1     # 100,000 x 10 over 1,000,000
    .venv/bin/python bench/training.py --scale 0.1 --skew 0.2   # one user: 20% of all

Data: 30 days, users and posts drawn with a skew (a few hot entities), times on whole
seconds (ties), 10% of events arriving up to 6 h late. ``--skew 0.2`` adds one user holding
20% of the events and of the observations (a bot, a power user).

``sluicegate-direct`` is the same extraction with every entity read event by event
(``hot_events_per_window`` out of reach): what bucket states save on hot entities.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import clickhouse_connect
import duckdb
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from materializer.features.definition import FeatureDefinition  # noqa: E402
from materializer.training import ObservationsSpine, training_set  # noqa: E402
from materializer.training._features import spec_from_compiled  # noqa: E402
from materializer.training.sql import HOT_EVENTS_PER_WINDOW  # noqa: E402
from migrations._clickhouse import apply_clickhouse_migrations  # noqa: E402
from sluicegate.clickhouse import BASE_SETTINGS  # noqa: E402

SUBJECT = "bench.upvote"
DAY_MS = 86_400_000
T0_MS = 1_767_225_600_000  # 2026-01-01
SCHEMA = SimpleNamespace(
    schema_type="JSON",
    schema=json.dumps(
        {
            "type": "object",
            "properties": {
                "user_id": {"type": "string"},
                "post_id": {"type": "string"},
                "community": {"type": "string"},
                "weight": {"type": "integer"},
            },
            "required": ["user_id", "post_id", "community", "weight"],
        }
    ),
)
USER = {"type": "user", "key": "user_id"}
POST = {"type": "post", "key": "post_id"}
FEATURES: list[dict[str, Any]] = [
    {"name": "user_upvotes", "entity": USER, "aggregation": "count()"},
    {"name": "user_posts", "entity": USER, "aggregation": "count(DISTINCT post_id)"},
    {"name": "user_posts_7d", "entity": USER, "aggregation": "uniqExact(post_id)", "window": "7d"},
    {"name": "user_weight_1d", "entity": USER, "aggregation": "sum(weight)", "window": "1d"},
    {"name": "user_max_weight_1h", "entity": USER, "aggregation": "max(weight)", "window": "1h"},
    {"name": "user_last_community", "entity": USER, "aggregation": "last(community)"},
    {"name": "user_communities", "entity": USER, "aggregation": "uniqExact(community)"},
    {"name": "post_upvotes", "entity": POST, "aggregation": "count()"},
    {"name": "post_upvotes_1d", "entity": POST, "aggregation": "count()", "window": "1d"},
    {"name": "post_users", "entity": POST, "aggregation": "uniqExact(user_id)"},
]


def _hash01(seed: int) -> str:
    return f"(cityHash64(number, {seed}) % 1000000) / 1000000.0"


def generate(client: Any, n_events: int, n_obs: int, skew: float = 0.0) -> None:
    """Events and observations generated inside ClickHouse (deterministic hashes). With
    ``skew``, one more user (the hot one) holds that share of the events and of the
    observations."""
    users = max(1000, n_events // 100)
    posts = max(1000, n_events // 100)
    hot = int(skew * 1_000_000)
    client.command(f"""
        INSERT INTO events (event_id, subject, entity_key, occurred_at, ingested_at, source,
            producer, op, schema_id, schema_version, payload_version, payload, kafka_topic,
            kafka_partition, kafka_offset)
        SELECT
            toString(number) AS event_id, '{SUBJECT}', concat('u', toString(u)),
            fromUnixTimestamp64Milli(toInt64({T0_MS} + intDiv(cityHash64(number, 3) % {30 * DAY_MS},
                                                              1000) * 1000), 'UTC') AS occ,
            occ + toIntervalMillisecond(if(cityHash64(number, 4) % 10 = 0,
                cityHash64(number, 5) % 21600000, cityHash64(number, 5) % 5000)),
            'http', 'bench', '', 1, 1, 1,
            concat('{{"user_id":"u', toString(u), '","post_id":"p', toString(p),
                   '","community":"c', toString(p % 500), '","weight":',
                   toString(cityHash64(number, 6) % 100), '}}'),
            'sg.{SUBJECT}', 0, number
        FROM (
            SELECT number,
                   if(cityHash64(number, 7) % 1000000 < {hot}, {users},
                      toUInt64(floor({users} * pow({_hash01(1)}, 1.5)))) AS u,
                   toUInt64(floor({posts} * pow({_hash01(2)}, 3))) AS p
            FROM numbers({n_events})
        )
    """)
    client.command(f"""
        INSERT INTO observations (spine, observation_id, observed_at, entities, labels)
        SELECT 'bench', concat('o', toString(number)),
            fromUnixTimestamp64Milli(toInt64({T0_MS}
                + intDiv(cityHash64(number, 13) % {30 * DAY_MS}, 1000) * 1000), 'UTC'),
            map('user', concat('u', toString(if(cityHash64(number, 17) % 1000000 < {hot}, {users},
                        toUInt64(floor({users} * pow({_hash01(11)}, 1.5)))))),
                'post', concat('p', toString(toUInt64(floor({posts} * pow({_hash01(12)}, 3)))))),
            concat('{{"label":', toString(cityHash64(number, 14) % 2), '}}')
        FROM numbers({n_obs})
    """)


def specs() -> list[Any]:
    out = []
    for f in FEATURES:
        defn = FeatureDefinition(source=SUBJECT, version=1, **f)
        out.append(spec_from_compiled(defn.compiled(SCHEMA), aggregation=f["aggregation"]))
    return out


# ---------------------------------------------------------------- DuckDB baselines

_USER_RANGE = """
    count(e.event_id) AS user_upvotes,
    count(DISTINCT e.post_id) AS user_posts,
    count(DISTINCT e.post_id) FILTER (WHERE e.ts >= o.t - 7 * {day}) AS user_posts_7d,
    coalesce(sum(e.weight) FILTER (WHERE e.ts >= o.t - {day}), 0) AS user_weight_1d,
    max(e.weight) FILTER (WHERE e.ts >= o.t - 3600000) AS user_max_weight_1h,
    arg_max(e.community, (e.ts, e.ing, e.event_id)) AS user_last_community,
    count(DISTINCT e.community) AS user_communities
"""
_POST_RANGE = """
    count(e.event_id) AS post_upvotes,
    count(e.event_id) FILTER (WHERE e.ts >= o.t - {day}) AS post_upvotes_1d,
    count(DISTINCT e.user_id) AS post_users
"""
NAMES = [f["name"] for f in FEATURES]


def duckdb_range(con: duckdb.DuckDBPyConnection) -> pa.Table:
    q = f"""
    WITH u AS (
        SELECT o.observation_id, {_USER_RANGE.format(day=DAY_MS)}
        FROM obs o LEFT JOIN ev e ON e.user_id = o.user_key AND e.ts < o.t
        GROUP BY o.observation_id),
    p AS (
        SELECT o.observation_id, {_POST_RANGE.format(day=DAY_MS)}
        FROM obs o LEFT JOIN ev e ON e.post_id = o.post_key AND e.ts < o.t
        GROUP BY o.observation_id)
    SELECT observation_id, {", ".join(NAMES)} FROM obs JOIN u USING (observation_id)
    JOIN p USING (observation_id)
    """
    return con.sql(q).to_arrow_table()


# The lifetime features (running aggregates, one history row per entity and time) and the
# final ASOF joins, shared by the DuckDB strategies that differ in their windowed features.
_LIFETIME_CTES = """    WITH ur AS (
        SELECT user_id, ts, ing, event_id,
            count(*) OVER w AS user_upvotes,
            -- DuckDB has no running count(DISTINCT): count first occurrences instead
            sum(first_post::INT) OVER w AS user_posts,
            sum(first_comm::INT) OVER w AS user_communities,
            community AS user_last_community
        FROM (SELECT *, row_number() OVER (PARTITION BY user_id, post_id
                                           ORDER BY ts, ing, event_id) = 1 AS first_post,
                        row_number() OVER (PARTITION BY user_id, community
                                           ORDER BY ts, ing, event_id) = 1 AS first_comm
              FROM ev)
        WINDOW w AS (PARTITION BY user_id ORDER BY ts, ing, event_id
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)),
    uh AS (SELECT user_id, ts,
                  arg_max(user_upvotes, (ing, event_id)) AS user_upvotes,
                  arg_max(user_posts, (ing, event_id)) AS user_posts,
                  arg_max(user_communities, (ing, event_id)) AS user_communities,
                  arg_max(user_last_community, (ing, event_id)) AS user_last_community
           FROM ur GROUP BY user_id, ts),
    pr AS (
        SELECT post_id, ts, ing, event_id, count(*) OVER w AS post_upvotes,
            sum(first_user::INT) OVER w AS post_users
        FROM (SELECT *, row_number() OVER (PARTITION BY post_id, user_id
                                           ORDER BY ts, ing, event_id) = 1 AS first_user
              FROM ev)
        WINDOW w AS (PARTITION BY post_id ORDER BY ts, ing, event_id
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)),
    ph AS (SELECT post_id, ts,
                  arg_max(post_upvotes, (ing, event_id)) AS post_upvotes,
                  arg_max(post_users, (ing, event_id)) AS post_users
           FROM pr GROUP BY post_id, ts),
"""
_FINAL_SELECT = """    SELECT o.observation_id,
        coalesce(uh.user_upvotes, 0) AS user_upvotes, coalesce(uh.user_posts, 0) AS user_posts,
        coalesce(uw.user_posts_7d, 0) AS user_posts_7d,
        coalesce(uw.user_weight_1d, 0) AS user_weight_1d, uw.user_max_weight_1h,
        uh.user_last_community, coalesce(uh.user_communities, 0) AS user_communities,
        coalesce(ph.post_upvotes, 0) AS post_upvotes,
        coalesce(pw.post_upvotes_1d, 0) AS post_upvotes_1d,
        coalesce(ph.post_users, 0) AS post_users
    FROM obs o
    ASOF LEFT JOIN uh ON uh.user_id = o.user_key AND o.t > uh.ts
    ASOF LEFT JOIN ph ON ph.post_id = o.post_key AND o.t > ph.ts
    LEFT JOIN uw ON uw.observation_id = o.observation_id
    LEFT JOIN pw ON pw.observation_id = o.observation_id
"""


def duckdb_asof(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Running aggregates + ASOF JOIN for lifetime features, window-bounded joins for
    windowed ones: Sluicegate's strategy written for DuckDB."""
    q = f"""
{_LIFETIME_CTES}    uw AS (
        SELECT o.observation_id,
            count(DISTINCT e.post_id) FILTER (WHERE e.ts >= o.t - 7 * {DAY_MS}) AS user_posts_7d,
            coalesce(sum(e.weight) FILTER (WHERE e.ts >= o.t - {DAY_MS}), 0) AS user_weight_1d,
            max(e.weight) FILTER (WHERE e.ts >= o.t - 3600000) AS user_max_weight_1h
        FROM obs o JOIN ev e ON e.user_id = o.user_key AND e.ts < o.t
                                AND e.ts >= o.t - 7 * {DAY_MS}
        GROUP BY o.observation_id),
    pw AS (
        SELECT o.observation_id, count(*) AS post_upvotes_1d
        FROM obs o JOIN ev e ON e.post_id = o.post_key AND e.ts < o.t AND e.ts >= o.t - {DAY_MS}
        GROUP BY o.observation_id)
{_FINAL_SELECT}    """
    return con.sql(q).to_arrow_table()


def duckdb_window(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Running aggregates + ASOF JOIN for lifetime features, and windowed ones as framed
    window aggregates (``RANGE BETWEEN w PRECEDING AND 1 PRECEDING``, DISTINCT included)
    over events and spine rows in one stream: no join a hot entity can blow up."""
    q = f"""
{_LIFETIME_CTES}    uw AS (
        SELECT observation_id,
            count(DISTINCT post_id) OVER w7d AS user_posts_7d,
            coalesce(sum(weight) OVER w1d, 0) AS user_weight_1d,
            max(weight) OVER w1h AS user_max_weight_1h
        FROM (SELECT user_id, ts, post_id, weight, NULL AS observation_id FROM ev
              UNION ALL
              SELECT user_key, t, NULL, NULL, observation_id FROM obs)
        WINDOW w7d AS (PARTITION BY user_id ORDER BY ts
                       RANGE BETWEEN {7 * DAY_MS} PRECEDING AND 1 PRECEDING),
               w1d AS (PARTITION BY user_id ORDER BY ts
                       RANGE BETWEEN {DAY_MS} PRECEDING AND 1 PRECEDING),
               w1h AS (PARTITION BY user_id ORDER BY ts
                       RANGE BETWEEN 3600000 PRECEDING AND 1 PRECEDING)
        QUALIFY observation_id IS NOT NULL),
    pw AS (
        SELECT observation_id, count(event_id) OVER w1d AS post_upvotes_1d
        FROM (SELECT post_id, ts, event_id, NULL AS observation_id FROM ev
              UNION ALL
              SELECT post_key, t, NULL, observation_id FROM obs)
        WINDOW w1d AS (PARTITION BY post_id ORDER BY ts
                       RANGE BETWEEN {DAY_MS} PRECEDING AND 1 PRECEDING)
        QUALIFY observation_id IS NOT NULL)
{_FINAL_SELECT}    """
    return con.sql(q).to_arrow_table()


def _with_timeout(
    con: duckdb.DuckDBPyConnection, fn: Callable[[], pa.Table], timeout: float
) -> tuple[float, pa.Table | None]:
    timer = threading.Timer(timeout, con.interrupt)
    started = time.perf_counter()
    timer.start()
    try:
        result = fn()
    except duckdb.InterruptException:
        return float("inf"), None
    except duckdb.OutOfMemoryException as exc:
        print(f"  out of memory ({exc})", flush=True)
        return float("inf"), None
    finally:
        timer.cancel()
    return time.perf_counter() - started, result


def compare(con: duckdb.DuckDBPyConnection, ours: pa.Table, theirs: pa.Table) -> dict[str, int]:
    """Mismatching values per feature (floats within 1e-9 relative)."""
    con.register("ours_t", ours)
    con.register("theirs_t", theirs)
    checks = ", ".join(
        f"count(*) FILTER (WHERE a.{n} IS DISTINCT FROM b.{n}) AS {n}" for n in NAMES
    )
    row = con.execute(
        f"SELECT count(*) AS joined, {checks} FROM ours_t a JOIN theirs_t b USING (observation_id)"
    ).fetchall()[0]
    out = dict(zip(["joined", *NAMES], row, strict=True))
    con.unregister("ours_t")
    con.unregister("theirs_t")
    return {k: int(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="1.0 = 1,000,000 observations over 10,000,000 events",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per engine (median)")
    parser.add_argument(
        "--skew", type=float, default=0.0, help="share of events and observations of one user"
    )
    parser.add_argument(
        "--direct",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time sluicegate reading every entity event by event",
    )
    parser.add_argument(
        "--baseline-timeout",
        type=float,
        default=300.0,
        help="stop a DuckDB run after this many seconds",
    )
    parser.add_argument(
        "--duckdb-memory", default="8GB", help="DuckDB memory_limit (a range join can need a lot)"
    )
    args = parser.parse_args()
    n_events, n_obs = int(10_000_000 * args.scale), int(1_000_000 * args.scale)
    work = Path(tempfile.mkdtemp(prefix="sg-bench-training-"))
    try:
        kwargs = {"interface": "chdb", "path": str(work / "chdb"), "settings": BASE_SETTINGS}
        boot = clickhouse_connect.get_client(**kwargs)
        boot.command("CREATE DATABASE IF NOT EXISTS sluicegate")
        client = clickhouse_connect.get_client(database="sluicegate", **kwargs)
        apply_clickhouse_migrations(client)
        started = time.perf_counter()
        generate(client, n_events, n_obs, args.skew)
        print(
            f"generated {n_events:,} events and {n_obs:,} observations in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        feature_specs = specs()

        times: dict[str, list[float]] = {
            "sluicegate": [],
            "sluicegate-direct": [],
            "duckdb-window": [],
            "duckdb-asof": [],
            "duckdb-range": [],
        }
        results: dict[str, pa.Table] = {}
        for _ in range(args.runs):
            for name, hot in (("sluicegate", HOT_EVENTS_PER_WINDOW), ("sluicegate-direct", 10**15)):
                if name == "sluicegate-direct" and not args.direct:
                    continue
                t = time.perf_counter()  # spine resolution, extraction, report and audit
                job = training_set(
                    client, ObservationsSpine("bench"), feature_specs, hot_events_per_window=hot
                )
                results[name] = job.to_arrow()
                times[name].append(time.perf_counter() - t)
                assert job.report.leakage_audit["passed"]
                print(f"  {name}: {times[name][-1]:.2f} s", flush=True)
        if not args.direct:
            del times["sluicegate-direct"]
        ours = results["sluicegate"]
        ours = ours.select(["observation_id", *NAMES])
        if args.direct:
            con0 = duckdb.connect()
            diff = compare(con0, ours, results["sluicegate-direct"].select(ours.column_names))
            if diff["joined"] != n_obs or any(v for k, v in diff.items() if k != "joined"):
                raise SystemExit(f"bucket states disagree with the direct reading: {diff}")
            con0.close()

        # the same data for DuckDB (export time not counted)
        ev = client.query_arrow(
            "SELECT JSONExtractString(payload, 'user_id') AS user_id, "
            "JSONExtractString(payload, 'post_id') AS post_id, "
            "JSONExtractString(payload, 'community') AS community, "
            "JSONExtractInt(payload, 'weight') AS weight, "
            "toUnixTimestamp64Milli(occurred_at) AS ts, toUnixTimestamp64Milli(ingested_at) "
            f"AS ing, event_id FROM events FINAL WHERE subject = '{SUBJECT}'"
        )
        obs = client.query_arrow(
            "SELECT observation_id, toUnixTimestamp64Milli(observed_at) AS t, "
            "entities['user'] AS user_key, entities['post'] AS post_key "
            "FROM observations FINAL WHERE spine = 'bench'"
        )
        client.close()
        boot.close()
        con = duckdb.connect()
        con.execute("SET threads = 2")
        con.execute(f"SET memory_limit = '{args.duckdb_memory}'")
        con.execute("CREATE TABLE ev AS SELECT * FROM ev")
        con.execute("CREATE TABLE obs AS SELECT * FROM obs")
        del ev, obs
        strategies = (
            ("duckdb-window", duckdb_window),
            ("duckdb-asof", duckdb_asof),
            ("duckdb-range", duckdb_range),
        )
        for name, fn in strategies:
            for _ in range(args.runs):
                elapsed, theirs = _with_timeout(con, lambda fn=fn: fn(con), args.baseline_timeout)
                times[name].append(elapsed)
                if theirs is None:
                    print(
                        f"  {name}: stopped (time limit {args.baseline_timeout:.0f} s or "
                        "memory limit)",
                        flush=True,
                    )
                    break
                print(f"  {name}: {elapsed:.2f} s", flush=True)
                diff = compare(con, ours, theirs)
                bad = {k: v for k, v in diff.items() if k != "joined" and v}
                if diff["joined"] != n_obs or bad:
                    raise SystemExit(f"{name} disagrees with sluicegate: {diff}")
        ours_median = statistics.median(times["sluicegate"])
        print(
            f"\n{n_obs:,} observations x {len(NAMES)} features over {n_events:,} events"
            + (f", one user holding {args.skew:.0%}" if args.skew else "")
            + f" (medians of {args.runs}; values compared: all equal)"
        )
        print(f"{'engine':<14}{'median s':>10}{'vs sluicegate':>16}")
        for name, values in times.items():
            med = statistics.median(values)
            shown = f"> {args.baseline_timeout:.0f}" if med == float("inf") else f"{med:.2f}"
            ratio = "stopped" if med == float("inf") else f"{med / ours_median:.2f}x"
            print(f"{name:<14}{shown:>10}{ratio:>16}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
