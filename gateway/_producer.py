"""The gateway's Kafka side: one idempotent confluent-kafka producer (acks=all) and a
background thread that serves its delivery reports and resolves asyncio futures.

A request awaits every delivery report of its records before answering. librdkafka
reports each record exactly once, as delivered or failed, within ``message.timeout.ms``;
that timeout is set to the gateway's produce timeout, so a request learns the fate of each
of its records in time and never acknowledges a record Kafka did not acknowledge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from sluicegate.kafka import gateway_producer_config

__all__ = ["Delivery", "KafkaSink", "OutboundRecord", "producer_config"]

log = logging.getLogger("sluicegate.gateway")

# Errors that are the record's own fault: retrying the same record cannot help.
_PERMANENT = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_RECORD,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.TOPIC_EXCEPTION,
}


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, Any]]  # (name, bytes): CloudEvents headers


@dataclass(frozen=True, slots=True)
class Delivery:
    """The fate of one record: acknowledged (``error is None``) at partition/offset, or not."""

    partition: int = -1
    offset: int = -1
    error: str | None = None
    permanent: bool = False  # the record itself is refused (too large, ...): do not retry

    @property
    def ok(self) -> bool:
        return self.error is None


# the public name of the gateway producer's settings (sluicegate.kafka holds them all)
producer_config = gateway_producer_config


class _Pending:
    """The delivery reports one request waits for; resolved from the poll thread."""

    __slots__ = ("future", "lock", "loop", "remaining", "results")

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.results: list[Delivery | None] = [None] * n
        self.remaining = n
        self.lock = threading.Lock()

    def settle(self, index: int, delivery: Delivery) -> None:
        # Called from the poll thread, and from the event loop for records that could
        # not even be queued.
        with self.lock:
            if self.results[index] is not None:
                return
            self.results[index] = delivery
            self.remaining -= 1
            done = self.remaining == 0
        if done:
            self.loop.call_soon_threadsafe(_resolve, self.future)

    def callback(self, index: int) -> Callable[[KafkaError | None, Any], None]:
        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            if err is None:
                self.settle(index, Delivery(msg.partition(), msg.offset()))
            else:
                code = err.code()
                self.settle(index, Delivery(error=err.str(), permanent=code in _PERMANENT))

        return on_delivery


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class KafkaSink:
    """An idempotent producer shared by all requests, with its own poll thread."""

    def __init__(self, config: dict[str, Any], *, produce_timeout_s: float) -> None:
        self._timeout = produce_timeout_s
        self._config = {
            **config,
            "error_cb": self._on_error,
            "logger": logging.getLogger("sluicegate.gateway.kafka"),
        }
        self._producer = Producer(self._config)
        # (when, why) of the last produce Kafka did not acknowledge; cleared by a success
        self.last_failure: tuple[float, str] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="gateway-kafka-poll", daemon=True)
        self._thread.start()

    @property
    def producer(self) -> Producer:
        return self._producer

    def _on_error(self, err: KafkaError) -> None:
        level = logging.ERROR if err.fatal() else logging.WARNING
        log.log(level, "kafka producer error", extra={"error": err.str(), "fatal": err.fatal()})
        if err.fatal():
            # A fatal idempotence error stops this producer for good: start a new one.
            # Records of the old one are reported failed by its purge, never lost silently.
            old, self._producer = self._producer, Producer(self._config)
            threading.Thread(target=self._retire, args=(old,), daemon=True).start()

    @staticmethod
    def _retire(old: Producer) -> None:
        with contextlib.suppress(KafkaException, RuntimeError):
            old.purge()
            old.flush(5)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self._producer.poll(0.05)
            except Exception:  # a callback bug must not kill the delivery thread
                log.exception("delivery report handling failed")

    async def send(self, records: Sequence[OutboundRecord]) -> list[Delivery]:
        """Produce ``records`` and wait until each is acknowledged or failed."""
        if not records:
            return []
        loop = asyncio.get_running_loop()
        pending = _Pending(loop, len(records))
        deadline = time.monotonic() + self._timeout
        produce = self._producer.produce
        for i, rec in enumerate(records):
            while True:
                try:
                    produce(
                        rec.topic,
                        rec.value,
                        rec.key,
                        headers=rec.headers,
                        on_delivery=pending.callback(i),
                    )
                    break
                except BufferError:
                    # Local queue full: Kafka is slow or away. Wait for room, not forever.
                    if time.monotonic() >= deadline:
                        pending.settle(i, Delivery(error="producer queue full"))
                        break
                    await asyncio.sleep(0.005)
                    produce = self._producer.produce
                except KafkaException as exc:
                    err = exc.args[0]
                    code = err.code() if isinstance(err, KafkaError) else None
                    pending.settle(i, Delivery(error=str(exc), permanent=code in _PERMANENT))
                    break
            if i % 1000 == 999:
                await asyncio.sleep(0)  # let other requests run during a huge batch
        # librdkafka reports every record within message.timeout.ms; the grace covers
        # the poll thread's own latency. Anything still unreported then is reported failed.
        overdue = loop.call_later(self._timeout + 5, _resolve, pending.future)
        try:
            await pending.future
        finally:
            overdue.cancel()
        if pending.remaining:
            log.error("delivery reports overdue", extra={"remaining": pending.remaining})
        results = [r or Delivery(error="delivery not confirmed in time") for r in pending.results]
        failed = next((r.error for r in results if r.error and not r.permanent), None)
        if failed is not None:
            self.last_failure = (time.monotonic(), failed)
        elif results:
            self.last_failure = None
        return results

    def send_nowait(
        self, record: OutboundRecord, on_done: Callable[[KafkaError | None, Any], None]
    ) -> bool:
        """Produce without waiting (dead letters); False when the local queue is full."""
        try:
            self._producer.produce(
                record.topic, record.value, record.key, headers=record.headers, on_delivery=on_done
            )
        except (BufferError, KafkaException):
            return False
        return True

    def ping(self, timeout: float) -> bool:
        """Whether a broker answers a metadata request within ``timeout`` (blocking)."""
        try:
            md = self._producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return bool(md.brokers)

    def failing(self, within_s: float = 30.0) -> str | None:
        """Why Kafka is failing although it may answer metadata: the last produce it did
        not acknowledge, if that was within ``within_s`` and nothing succeeded since."""
        last = self.last_failure
        if last is None or time.monotonic() - last[0] > within_s:
            return None
        return last[1]

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop the poll thread."""
        self._producer.flush(timeout)
        self._stop.set()
        self._thread.join(timeout=2)
