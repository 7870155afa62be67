"""Schemas and an in-memory Kafka sink shared by the gateway's unit tests."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway import Delivery, OutboundRecord

ORDER_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "ts": {"type": "string", "format": "date-time"},
        "amount": {"type": "number", "minimum": 0},
        "shop": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
        "items": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["order_id", "ts", "amount"],
    "additionalProperties": False,
}

CLICK_AVRO = {
    "type": "record",
    "name": "Click",
    "namespace": "web",
    "fields": [
        {"name": "user", "type": "string"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "page", "type": ["null", "string"], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
    ],
}


class FakeSink:
    """Records what would be produced; ``fail`` makes deliveries fail (retriable)."""

    def __init__(self) -> None:
        self.produced: list[OutboundRecord] = []
        self.dead_letters: list[OutboundRecord] = []
        self.fail: set[int] = set()  # positions (in a send call) whose delivery fails
        self.permanent = False

    async def send(self, records: list[OutboundRecord]) -> list[Delivery]:
        await asyncio.sleep(0)
        out = []
        for i, rec in enumerate(records):
            if i in self.fail:
                out.append(Delivery(error="Local: Message timed out", permanent=self.permanent))
            else:
                self.produced.append(rec)
                out.append(Delivery(partition=0, offset=len(self.produced) - 1))
        return out

    def send_nowait(self, record: OutboundRecord, on_done: Any) -> bool:
        self.dead_letters.append(record)
        return True

    def ping(self, timeout: float) -> bool:
        return True

    def failing(self, within_s: float = 30.0) -> str | None:
        return None

    def close(self, timeout: float = 10.0) -> None:
        pass
