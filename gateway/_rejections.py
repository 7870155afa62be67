"""What happens to a refused event: it is counted (per subject and reason), written to the
dead-letter topic with its violations, and kept in a small in-memory ring per subject so
its team can look at the latest ones (``GET /v1/rejections/{subject}``)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from enum import StrEnum
from typing import Any

import orjson
from confluent_kafka import KafkaError

from gateway._metrics import GatewayMetrics
from gateway._producer import KafkaSink, OutboundRecord
from sluicegate.envelope import ms_to_iso, new_event_id, now_ms
from sluicegate.naming import REJECTED_TOPIC

__all__ = ["Reason", "Rejections"]

log = logging.getLogger("sluicegate.gateway")

# The raw event text of a rejection is cut to fit a Kafka record (1 MB by default) on the
# dead-letter topic, and to much less in the in-memory ring.
MAX_DEAD_LETTER_TEXT = 512 * 1024
MAX_RING_TEXT = 4 * 1024


class Reason(StrEnum):
    """Why an event was refused."""

    SCHEMA = "schema"  # the payload breaks the schema
    EVENT_TIME = "event_time"  # the event-time field is missing or not a time
    ENTITY_KEY = "entity_key"  # an entity-key field is missing
    MALFORMED = "malformed"  # not JSON, or not an event object


class Rejections:
    """Counter + dead-letter topic + recent-rejection ring, per subject."""

    def __init__(self, sink: KafkaSink, metrics: GatewayMetrics, *, keep: int = 100) -> None:
        self._sink = sink
        self._metrics = metrics
        self._keep = keep
        self._recent: dict[str, deque[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def record(
        self,
        subject: str,
        reason: Reason,
        violations: list[dict[str, Any]],
        event_text: str,
        producer: str,
        event_id: str | None = None,
    ) -> str:
        """Count, dead-letter and remember one refused event; returns the rejection's id."""
        rejection_id = new_event_id()
        doc = {
            "id": rejection_id,
            "subject": subject,
            "reason": reason.value,
            "violations": violations,
            "event": event_text[:MAX_DEAD_LETTER_TEXT],
            "event_truncated": len(event_text) > MAX_DEAD_LETTER_TEXT,
            "received_at": ms_to_iso(now_ms()),
            "producer": producer,
            "event_id": event_id,
        }
        self._metrics.rejected.labels(subject, reason.value).inc()
        kept = {
            **doc,
            "event": event_text[:MAX_RING_TEXT],
            "event_truncated": len(event_text) > MAX_RING_TEXT,
        }
        with self._lock:
            ring = self._recent.get(subject)
            if ring is None:
                ring = self._recent[subject] = deque(maxlen=self._keep)
            ring.append(kept)
        record = OutboundRecord(REJECTED_TOPIC, subject.encode(), orjson.dumps(doc), [])
        if not self._sink.send_nowait(record, self._on_delivery):
            self._metrics.dead_letter_failures.inc()
            log.warning("dead letter not queued", extra={"subject": subject})
        return rejection_id

    def _on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self._metrics.dead_letter_failures.inc()
            log.warning("dead letter not delivered", extra={"error": err.str()})

    def recent(self, subject: str, limit: int = 100) -> list[dict[str, Any]]:
        """The latest rejections of ``subject`` this process refused, newest first."""
        with self._lock:
            ring = list(self._recent.get(subject, ()))
        return ring[::-1][:limit]

    def find(self, subject: str, rejection_id: str) -> dict[str, Any] | None:
        """A rejection this process still remembers (its event text may be cut)."""
        with self._lock:
            ring = list(self._recent.get(subject, ()))
        return next((r for r in ring if r.get("id") == rejection_id), None)
