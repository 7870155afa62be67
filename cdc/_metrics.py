"""Prometheus metrics of the CDC bridge, registered on the app's own CollectorRegistry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["CdcMetrics"]

_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class CdcMetrics:
    """Changes bridged per table and op, tables stopped, versions registered, lag."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.changes = Counter(
            "sluicegate_cdc_changes",
            "Row changes written to governed topics, by database, table and op.",
            ["database", "table", "op"],
            registry=registry,
        )
        self.tombstones = Counter(
            "sluicegate_cdc_tombstones_skipped",
            "Debezium tombstones (the null record after a delete) skipped on purpose.",
            ["database", "table"],
            registry=registry,
        )
        self.stopped = Gauge(
            "sluicegate_cdc_table_stopped",
            "1 while a table is held because its schema change was refused.",
            ["database", "table"],
            registry=registry,
        )
        self.versions = Counter(
            "sluicegate_cdc_schema_versions_registered",
            "New subject versions registered after a table's shape changed.",
            ["database", "table"],
            registry=registry,
        )
        self.lag = Histogram(
            "sluicegate_cdc_commit_to_produce_seconds",
            "Time from the source commit to the governed record's acknowledgement "
            "(streamed changes; snapshot rows are not counted).",
            ["database"],
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "sluicegate_cdc_bridge_errors",
            "Bridge failures (Kafka, undecodable records); the bridge retries.",
            ["database", "kind"],
            registry=registry,
        )
