"""Building the gateway: called from the composition root's lifespan."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from gateway._logging import setup_json_logging
from gateway._metrics import GatewayMetrics
from gateway._producer import KafkaSink
from gateway._service import Gateway
from registry import Registry
from sluicegate.kafka import GovernedTopics, gateway_producer_config
from sluicegate.settings import Settings

__all__ = ["start_gateway"]


def start_gateway(
    settings: Settings, registry: Callable[[], Registry], metrics: CollectorRegistry
) -> Gateway:
    """Build the Kafka producer and the gateway; ``registry`` is called when a request
    needs the registry, ``metrics`` receives the gateway's collectors. Call ``close()`` on
    the result at shutdown."""
    setup_json_logging()
    sink = KafkaSink(
        gateway_producer_config(settings.kafka_bootstrap, settings.produce_timeout_s),
        produce_timeout_s=settings.produce_timeout_s,
    )
    return Gateway(
        registry,
        sink,
        GatewayMetrics(metrics),
        topics=GovernedTopics(settings.kafka_bootstrap, settings.topic_partitions),
    )
