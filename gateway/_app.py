"""Building the gateway for an app: called from the composition root's lifespan."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from gateway._logging import setup_json_logging
from gateway._metrics import GatewayMetrics
from gateway._producer import KafkaSink, producer_config
from gateway._service import Gateway
from sluicegate.kafka import GovernedTopics
from sluicegate.settings import Settings

__all__ = ["start_gateway"]


def start_gateway(app: FastAPI, settings: Settings) -> Gateway:
    """Build the Kafka producer and the gateway, and put them on ``app.state``
    (``kafka_producer``, ``gateway``, ``metrics_registry``). The registry is looked up on
    ``app.state.registry`` when a request needs it. Call ``close()`` on the result at
    shutdown."""
    setup_json_logging()
    metrics_registry = getattr(app.state, "metrics_registry", None)
    if metrics_registry is None:
        metrics_registry = app.state.metrics_registry = CollectorRegistry()
    sink = KafkaSink(
        producer_config(settings.kafka_bootstrap, settings.produce_timeout_s),
        produce_timeout_s=settings.produce_timeout_s,
    )
    app.state.kafka_producer = sink
    gateway = Gateway(
        lambda: app.state.registry,
        sink,
        GatewayMetrics(metrics_registry),
        topics=GovernedTopics(settings.kafka_bootstrap, settings.topic_partitions),
    )
    app.state.gateway = gateway
    return gateway
