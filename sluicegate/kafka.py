"""Kafka for Sluicegate's clients, in one place: the librdkafka settings of every producer
and consumer (gateway, CDC bridge, materializer), consumer group membership, and the
creation of governed topics."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

__all__ = [
    "GovernedTopics",
    "bridge_consumer_config",
    "bridge_producer_config",
    "create_topics",
    "gateway_producer_config",
    "loader_consumer_config",
    "member_of",
    "static_membership",
]


def gateway_producer_config(bootstrap: str, produce_timeout_s: float) -> dict[str, Any]:
    """The gateway producer: idempotent, ``acks=all``, a short linger for low latency.

    ``message.timeout.ms`` is the produce timeout, so every record is reported (delivered
    or failed) before the request gives up waiting."""
    timeout_ms = max(1000, int(produce_timeout_s * 1000))
    return {
        "bootstrap.servers": bootstrap,
        "client.id": "sluicegate-gateway",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "compression.type": "lz4",
        "message.timeout.ms": timeout_ms,
        "request.timeout.ms": min(timeout_ms, 30000),
        "socket.connection.setup.timeout.ms": min(timeout_ms, 30000),
        "queue.buffering.max.messages": 200_000,
        "queue.buffering.max.kbytes": 512 * 1024,
    }


def bridge_consumer_config(
    bootstrap: str, database: str, topics: Iterable[str], member: str | None
) -> dict[str, Any]:
    """The CDC bridge's consumer of one database's raw topics: offsets committed by hand
    once the governed records are acknowledged, low fetch latency."""
    group = f"sluicegate-cdc-{database}"
    return {
        **static_membership(member, group, topics),
        "bootstrap.servers": bootstrap,
        "session.timeout.ms": 10_000,
        "group.id": group,
        "client.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "topic.metadata.refresh.interval.ms": 5000,
        "fetch.wait.max.ms": 50,
        "log_level": 3,
    }


def bridge_producer_config(bootstrap: str, database: str, ack_timeout_s: float) -> dict[str, Any]:
    """The CDC bridge's producer of governed records: idempotent, ``acks=all``; every
    record is reported (delivered or failed) within ``ack_timeout_s``."""
    return {
        "bootstrap.servers": bootstrap,
        "client.id": f"sluicegate-cdc-{database}",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.timeout.ms": int(ack_timeout_s * 1000),
        "log_level": 3,
    }


def loader_consumer_config(
    bootstrap: str,
    group: str,
    *,
    instance_id: str | None,
    session_timeout_ms: int,
    metadata_refresh_ms: int,
    logger: Any,
) -> dict[str, Any]:
    """The materializer's consumer of governed topics: offsets stored and committed by
    hand after ClickHouse accepted a load, large fetches."""
    static = {"group.instance.id": instance_id} if instance_id else {}
    return {
        **static,
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "session.timeout.ms": session_timeout_ms,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "topic.metadata.refresh.interval.ms": metadata_refresh_ms,
        "fetch.wait.max.ms": 100,
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
        "logger": logger,
    }


def member_of(data_dir: Path) -> str:
    """The identity of the process that owns ``data_dir`` (one process per directory):
    the same after a restart on the same directory, different for every other one."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]


def static_membership(
    member: str | None, group: str, subscription: Iterable[str]
) -> dict[str, Any]:
    """``group.instance.id`` for a consumer of ``group`` run by ``member``, or nothing.

    With static membership a consumer restarted after kill -9 gets its partitions back at
    once instead of waiting for the dead session to expire. The id also names the
    subscription: a restart that subscribes to other topics joins as a new member (the
    old one expires after its session timeout) instead of being handed the old topics."""
    if member is None:
        return {}
    topics = hashlib.sha256("\n".join(sorted(subscription)).encode()).hexdigest()[:8]
    return {"group.instance.id": f"{group}-{member}-{topics}"}


def create_topics(
    admin: AdminClient, topics: Iterable[str], partitions: int, timeout: float
) -> None:
    """Create ``topics`` with ``partitions`` partitions each; a topic that exists already
    is left as it is. Raises KafkaException for any other refusal, and on a timeout."""
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=-1) for t in topics],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    for future in futures.values():
        try:
            future.result(timeout)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise


class GovernedTopics:
    """Creates each governed topic with ``partitions`` partitions before it is first
    produced to (the broker's own default applies only to topics created otherwise).

    A topic that exists is left as it is; when the broker cannot be reached the produce
    that follows fails and answers for it, so nothing is raised here."""

    def __init__(self, bootstrap: str, partitions: int) -> None:
        self._bootstrap = bootstrap
        self._partitions = partitions
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self._admin: AdminClient | None = None
        self._quiet_until = 0.0  # after a failure, leave the broker alone for a while

    def ensure(self, topic: str, timeout: float = 2.0) -> None:
        if topic in self._known or time.monotonic() < self._quiet_until:
            return
        with self._lock:
            if topic in self._known or time.monotonic() < self._quiet_until:
                return
            if self._admin is None:
                self._admin = AdminClient({"bootstrap.servers": self._bootstrap, "log_level": 0})
            try:
                create_topics(self._admin, [topic], self._partitions, timeout)
            except Exception:  # refused or timed out: the broker is away; try again later
                self._quiet_until = time.monotonic() + 30
                return
            self._known.add(topic)
