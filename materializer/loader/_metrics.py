"""Prometheus metrics of the materializer, registered on the app's own CollectorRegistry
(so several loaders in one process, as in tests, never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["LoaderMetrics"]


class LoaderMetrics:
    """Rows and dead letters loaded, load time and size, lag, store errors, replays."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """``registry``: where the collectors are registered (a private one by default,
        for loaders whose metrics nobody serves)."""
        registry = registry if registry is not None else CollectorRegistry()
        self.rows = Counter(
            "sluicegate_materializer_rows",
            "Events loaded into ClickHouse (rate() gives rows/s).",
            ["subject"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "sluicegate_materializer_dead_letters",
            "Records written to dead_letters instead of events.",
            ["topic"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "sluicegate_materializer_batch_seconds",
            "Time from decoding a load to ClickHouse accepting it and the offsets being committed.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.batch_rows = Histogram(
            "sluicegate_materializer_batch_rows",
            "Records per load.",
            buckets=(1, 10, 100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000),
            registry=registry,
        )
        self.lag = Gauge(
            "sluicegate_materializer_lag",
            "Records in a partition not yet loaded (high watermark - committed position).",
            ["topic", "partition"],
            registry=registry,
        )
        self.store_errors = Counter(
            "sluicegate_materializer_store_errors",
            "Loads that ClickHouse (or the registry) could not take; each is retried with backoff.",
            registry=registry,
        )
        self.rows_per_second = Gauge(
            "sluicegate_materializer_rows_per_second",
            "Events loaded per second over the last load cycle.",
            registry=registry,
        )
        self.loop_stuck_seconds = Gauge(
            "sluicegate_materializer_loop_stuck_seconds",
            "Seconds since the consumer loop last finished a turn (a turn takes well under a "
            "second, a load a few; a value that keeps growing means the loop is stuck).",
            registry=registry,
        )
        self.replayed_loads = Counter(
            "sluicegate_materializer_replayed_loads",
            "Loads rebuilt after a restart from their recorded plan (ClickHouse drops any "
            "that had landed).",
            registry=registry,
        )
