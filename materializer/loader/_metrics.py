"""Prometheus collectors of the materializer, in the default registry that /metrics serves."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS = Counter(
    "sluicegate_materializer_rows",
    "Events loaded into ClickHouse (rate() gives rows/s).",
    ["subject"],
)
DEAD_LETTERS = Counter(
    "sluicegate_materializer_dead_letters",
    "Records written to dead_letters instead of events.",
    ["topic"],
)
BATCH_SECONDS = Histogram(
    "sluicegate_materializer_batch_seconds",
    "Time from decoding a load to ClickHouse accepting it and the offsets being committed.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BATCH_ROWS = Histogram(
    "sluicegate_materializer_batch_rows",
    "Records per load.",
    buckets=(1, 10, 100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000),
)
LAG = Gauge(
    "sluicegate_materializer_lag",
    "Records in a partition not yet loaded (high watermark - committed position).",
    ["topic", "partition"],
)
STORE_ERRORS = Counter(
    "sluicegate_materializer_store_errors",
    "Loads that ClickHouse (or the registry) could not take; each is retried with backoff.",
)
ROWS_PER_SECOND = Gauge(
    "sluicegate_materializer_rows_per_second",
    "Events loaded per second over the last load cycle.",
)
REPLAYED_LOADS = Counter(
    "sluicegate_materializer_replayed_loads",
    "Loads rebuilt after a restart from their recorded plan (ClickHouse drops any that had "
    "landed).",
)
