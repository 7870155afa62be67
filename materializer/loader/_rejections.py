"""The gateway's dead-letter topic (``sg.rejected``) -> ClickHouse ``rejections``.

A small loop of its own beside the governed-topic loader: read a batch, insert it under a
token naming its offset range, then commit. A crash between the two replays the batch,
which the token (and the table's ``ReplacingMergeTree`` on ``(subject, id)``) drops, so
every rejection is stored once; nothing else depends on it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from sluicegate.envelope import iso_to_ms
from sluicegate.kafka import loader_consumer_config
from sluicegate.naming import REJECTED_TOPIC

__all__ = ["REJECTION_COLUMNS", "RejectionsLoader", "rejection_row"]

log = logging.getLogger("sluicegate.materializer.rejections")

REJECTION_COLUMNS = (
    "id",
    "subject",
    "reason",
    "violations",
    "event",
    "event_truncated",
    "event_id",
    "producer",
    "received_at",
    "kafka_partition",
    "kafka_offset",
)
# Rejections written before they had ids are named after their place in the topic.
_LEGACY_IDS = uuid.UUID("0d7f1e6a-35a8-4c55-9a83-6f5fb0b2e0c4")


def rejection_row(doc: dict[str, Any], partition: int, offset: int) -> tuple[Any, ...]:
    """One ``rejections`` row from a dead-letter document of the gateway."""
    received = doc.get("received_at")
    return (
        str(doc.get("id") or uuid.uuid5(_LEGACY_IDS, f"{partition}/{offset}")),
        str(doc.get("subject") or ""),
        str(doc.get("reason") or ""),
        orjson.dumps(doc.get("violations") or []).decode(),
        str(doc.get("event") or ""),
        bool(doc.get("event_truncated")),
        str(doc.get("event_id") or ""),
        str(doc.get("producer") or ""),
        iso_to_ms(received) if isinstance(received, str) else 0,
        partition,
        offset,
    )


class RejectionsLoader:
    """Loads ``sg.rejected`` into ``rejections``; :meth:`start` runs it in a thread."""

    def __init__(self, client: Client, kafka_bootstrap: str, group: str) -> None:
        self._client = client
        self._config = loader_consumer_config(
            kafka_bootstrap,
            f"{group}-rejections",
            instance_id=None,
            session_timeout_ms=10_000,
            metadata_refresh_ms=5_000,
            logger=log,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.loaded = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rejections", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._loop()
                return
            except Exception:
                log.exception("rejections loader failed; restarting it in 5 s")
                self._stop.wait(5.0)

    def _loop(self) -> None:
        consumer = Consumer(self._config)
        consumer.subscribe([REJECTED_TOPIC])
        try:
            while not self._stop.is_set():
                messages = [
                    m
                    for m in consumer.consume(num_messages=5000, timeout=0.5)
                    if (err := m.error()) is None or err.code() != KafkaError._PARTITION_EOF
                ]
                if messages:
                    self._load(consumer, messages)
        finally:
            consumer.close()

    def _load(self, consumer: Consumer, messages: list[Message]) -> None:
        by_partition: dict[int, list[Message]] = {}
        for m in messages:
            if m.error() is not None:
                log.warning("consume error on %s: %s", REJECTED_TOPIC, m.error())
                continue
            by_partition.setdefault(m.partition() or 0, []).append(m)
        for partition, batch in by_partition.items():
            rows = []
            for m in batch:
                try:
                    doc = orjson.loads(m.value() or b"{}")
                except orjson.JSONDecodeError:
                    continue  # not a gateway document: nothing to show for it
                if isinstance(doc, dict):
                    rows.append(rejection_row(doc, partition, m.offset() or 0))
            first, last = batch[0].offset(), batch[-1].offset()
            while not self._stop.is_set():
                try:
                    if rows:
                        self._client.insert(
                            "rejections",
                            rows,
                            column_names=REJECTION_COLUMNS,
                            settings={
                                "insert_deduplication_token": f"{REJECTED_TOPIC}/{partition}/"
                                f"{first}-{last}"
                            },
                        )
                    break
                except (ClickHouseError, OSError) as exc:
                    log.warning("rejections not stored (%s); retrying in 2 s", exc)
                    self._stop.wait(2.0)
            else:
                return  # stopping: uncommitted, read again at start
            consumer.commit(
                offsets=[TopicPartition(REJECTED_TOPIC, partition, (last or 0) + 1)],
                asynchronous=False,
            )
            self.loaded += len(rows)
