"""Prometheus metrics of the gateway, registered on the app's own CollectorRegistry (so
several apps in one process, as in tests, never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["GatewayMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    """accepted/rejected events per subject, request and produce latency."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "sluicegate_gateway_events_accepted",
            "Events acknowledged by Kafka and accepted.",
            ["subject"],
            registry=registry,
        )
        self.rejected = Counter(
            "sluicegate_gateway_events_rejected",
            "Events refused, by subject and reason.",
            ["subject", "reason"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "sluicegate_gateway_request_seconds",
            "Ingest request latency, by endpoint and HTTP status.",
            ["endpoint", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.produce_seconds = Histogram(
            "sluicegate_gateway_produce_seconds",
            "Time from producing a request's records to their last delivery report.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.produce_failures = Counter(
            "sluicegate_gateway_produce_failures",
            "Records Kafka did not acknowledge (answered 503 or 413).",
            ["subject"],
            registry=registry,
        )
        self.dead_letter_failures = Counter(
            "sluicegate_gateway_dead_letter_failures",
            "Rejections that could not be written to the dead-letter topic.",
            registry=registry,
        )
