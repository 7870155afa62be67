"""The consumer loop: governed topics -> loads -> ClickHouse, offsets committed after.

One thread owns the Kafka consumer. It buffers records per partition, cuts loads by size
and time, decodes them, hands them to :class:`ClickHouseSink` and commits each
partition's offset only once ClickHouse accepted the load. While ClickHouse (or the
registry) is unavailable it pauses every partition and retries the same loads with
backoff: nothing is skipped and no offset moves past data that is not loaded.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import traceback
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from materializer.loader._batch import Batch, EventColumns, Plan
from materializer.loader._config import MaterializerConfig
from materializer.loader._decode import RecordDecoder, Schema, SchemaSource
from materializer.loader._metrics import LoaderMetrics
from materializer.loader._plan import Buffer, cut
from materializer.loader._sink import ClickHouseSink
from sluicegate.envelope import now_ms
from sluicegate.errors import Unavailable
from sluicegate.heap import collector_paused
from sluicegate.kafka import loader_consumer_config
from sluicegate.naming import governed_topic_subscription

log = logging.getLogger("sluicegate.materializer")

# Errors a consumed message can carry that only mean "nothing to read here (yet)".
_QUIET_ERRORS = {KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART}
# How long the loop may go without finishing a turn before the watchdog logs where it is
# (a turn takes well under a second; a load of 100,000 rows a few seconds).
STUCK_AFTER_S = 60.0


class Materializer:
    """Loads every governed topic into ClickHouse; :meth:`start` runs it in a thread."""

    def __init__(
        self,
        config: MaterializerConfig,
        sink: ClickHouseSink,
        registry: SchemaSource,
        metrics: LoaderMetrics | None = None,
    ) -> None:
        self._config = config
        self._metrics = metrics if metrics is not None else LoaderMetrics()
        self._sink = sink
        self._registry = registry
        self._schemas: dict[int, Schema] = {}
        self._buffer = Buffer()
        self._plans: dict[tuple[str, int], deque[Plan]] = {}
        self._pending: list[Batch] = []
        # The load being written by the writer thread: (future, its batches, start time).
        self._inflight: tuple[Future[None], list[Batch], float] | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._blocked = False
        self._backoff = config.retry_initial_s
        self._retry_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._turned = time.monotonic()  # when the loop last finished a turn
        self._metrics.loop_stuck_seconds.set_function(lambda: time.monotonic() - self._turned)
        self.loaded_rows = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def blocked(self) -> bool:
        """Whether loads are waiting for ClickHouse or the registry to come back."""
        return self._blocked

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="materializer", daemon=True)
        self._thread.start()
        threading.Thread(target=self._watch, name="materializer-watchdog", daemon=True).start()

    def _watch(self, stuck_after_s: float = STUCK_AFTER_S) -> None:
        """Log, once per stall, where the loop is when it has not finished a turn for
        ``stuck_after_s``: a stuck loader loses nothing (its records stay uncommitted in
        Kafka) but `events` goes stale, and the stack says on what it waits."""
        warned_at: float | None = None
        while not self._stop.wait(min(stuck_after_s / 4, 5.0)):
            turned = self._turned
            if time.monotonic() - turned < stuck_after_s or warned_at == turned:
                continue
            warned_at = turned
            thread = self._thread
            frame = sys._current_frames().get(thread.ident) if thread and thread.ident else None
            where = "".join(traceback.format_stack(frame)) if frame is not None else "(not running)"
            log.warning(
                "materializer loop has not finished a turn for %.0f s; it is at:\n%s",
                time.monotonic() - turned,
                where,
            )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop consuming, try one last load of what is buffered, commit and close."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _supervise(self) -> None:
        """Run the loop; after an unexpected error start it again from the committed
        offsets (what was not committed is read again and replayed from its plans)."""
        while not self._stop.is_set():
            try:
                self.run()
                return
            except Exception:
                log.exception("materializer loop failed; restarting it in 5 s")
                self._buffer = Buffer()
                self._plans.clear()
                self._pending = []
                self._inflight = None
                self._blocked = False
                self._stop.wait(5.0)

    def consumer_config(self) -> dict[str, Any]:
        c = self._config
        return loader_consumer_config(
            c.kafka_bootstrap,
            c.group_id,
            instance_id=c.instance_id,
            session_timeout_ms=c.session_timeout_ms,
            metadata_refresh_ms=c.metadata_refresh_ms,
            logger=logging.getLogger("sluicegate.materializer.kafka"),
        )

    def run(self) -> None:
        """The loop; returns after :meth:`stop`."""
        consumer = Consumer(self.consumer_config())
        consumer.subscribe(
            [self._config.subscription or governed_topic_subscription()],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info("materializer consuming governed topics as group %s", self._config.group_id)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="materializer-write")
        try:
            while not self._stop.is_set():
                self._step(consumer)
                self._turned = time.monotonic()
            self._finish(consumer)
            if not self._blocked:
                self._flush(consumer, wait=True, final=True)
        finally:
            self._writer.shutdown(wait=True)
            consumer.close()

    # ---- one turn of the loop ---------------------------------------------------------

    def _step(self, consumer: Consumer) -> None:
        c = self._config
        if self._blocked:
            consumer.pause(consumer.assignment())  # partitions assigned while blocked too
            self._consume(consumer, 0.1)
            if time.monotonic() >= self._retry_at:
                self._flush(consumer, wait=True)
            return
        room = c.max_batch_rows - self._buffer.rows
        if room > 0:
            self._consume(consumer, 0.02 if self._inflight else 0.05, room)
        if self._inflight is not None and self._inflight[0].done():
            self._finish(consumer)
        oldest = self._buffer.oldest
        if self._buffer.rows >= c.max_batch_rows or (
            oldest is not None and time.monotonic() - oldest >= c.max_batch_ms / 1000
        ):
            self._flush(consumer)

    def _consume(self, consumer: Consumer, timeout: float, limit: int = 1000) -> None:
        now = time.monotonic()
        for message in consumer.consume(num_messages=min(limit, 100_000), timeout=timeout):
            error = message.error()
            if error is None:
                self._buffer.add(message, now)
            elif error.code() not in _QUIET_ERRORS:
                log.warning("consume error on %s: %s", message.topic(), error)

    def _flush(self, consumer: Consumer, *, wait: bool = False, final: bool = False) -> None:
        """Cut and decode the next loads and hand them to the writer thread, which loads
        them while this thread decodes the following ones. One load is in flight at a
        time, and its offsets are committed (here, after the write) before the next."""
        started = time.monotonic()
        try:
            if not self._pending:
                with collector_paused():  # the load's records die before a collection
                    self._pending = self._build()
        except Unavailable as exc:
            self._metrics.store_errors.inc()
            if not final:
                self._block(consumer, exc)
            return
        if not self._pending:
            if self._blocked and self._inflight is None:
                # What failed is gone (its partitions were revoked while paused) or there
                # is nothing to retry: consume again; the next load tries the store.
                self._unblock(consumer, "no load left to retry; resuming consumption")
            return
        if self._inflight is not None:
            self._finish(consumer)  # backpressure: wait for the load before
            if self._blocked and not wait:
                return  # it failed: it goes first, retried with backoff
        batches, self._pending = self._pending, []
        assert self._writer is not None  # created by run()
        self._inflight = (self._writer.submit(self._sink.write, batches), batches, started)
        if wait:
            self._finish(consumer, final=final)

    def _finish(self, consumer: Consumer, *, final: bool = False) -> None:
        """Wait for the load in flight; commit its offsets, or on failure put it back in
        front of the pending loads and block."""
        if self._inflight is None:
            return
        future, batches, started = self._inflight
        self._inflight = None
        try:
            future.result()
        except Unavailable as exc:
            self._metrics.store_errors.inc()
            self._pending = batches + self._pending
            if final:
                log.warning("last load before stopping failed (%s); it is replayed at start", exc)
            else:
                self._block(consumer, exc)
            return
        self._commit(consumer, batches)
        rows = sum(len(b.events) for b in batches)
        elapsed = time.monotonic() - started
        self.loaded_rows += rows
        self._metrics.batch_seconds.observe(elapsed)
        self._metrics.batch_rows.observe(rows + sum(len(b.dead_letters) for b in batches))
        self._metrics.rows_per_second.set(rows / elapsed if elapsed > 0 else 0.0)
        for batch in batches:
            if batch.events.subject is not None:
                self._metrics.rows.labels(batch.events.subject).inc(len(batch.events))
            if batch.dead_letters:
                self._metrics.dead_letters.labels(batch.plan.topic).inc(len(batch.dead_letters))
        if self._blocked:
            self._unblock(consumer, "ClickHouse accepts loads again; resuming")

    def _unblock(self, consumer: Consumer, why: str) -> None:
        log.warning(why)
        self._blocked = False
        self._backoff = self._config.retry_initial_s
        consumer.resume(consumer.assignment())

    def _block(self, consumer: Consumer, exc: Exception) -> None:
        if not self._blocked:
            log.warning("pausing consumption: %s", exc)
            consumer.pause(consumer.assignment())
        self._blocked = True
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self._config.retry_max_s)

    def _build(self) -> list[Batch]:
        """Cut and decode the next loads. Raises Unavailable (leaving the buffer as it was)
        when the registry or ClickHouse (for recorded plans) cannot answer."""
        decoder = RecordDecoder(self._registry, self._schemas)
        now = now_ms()
        cuts: list[tuple[tuple[str, int], int, Batch]] = []
        try:
            for tp, records in self._buffer.records.items():
                plans = self._plans.get(tp)
                if plans is None:
                    plans = deque(self._sink.plans(tp[0], tp[1], records[0].offset() or 0))
                    self._plans[tp] = plans
                taken = cut(tp, records, plans, self._config.max_batch_rows)
                if taken is None:
                    continue
                count, plan, planned = taken
                if planned:
                    self._metrics.replayed_loads.inc()
                    log.info("replaying recorded load %s", plan.token)
                batch = Batch(plan, EventColumns(), [], planned)
                decoder.add_load(records[:count], batch.events, batch.dead_letters, now)  # type: ignore[arg-type]
                cuts.append((tp, count, batch))
        except Unavailable:
            self._plans.clear()  # replayed plans were popped: read them again next time
            raise
        for tp, count, _ in cuts:
            self._buffer.take(tp, count)
        return [batch for _, _, batch in cuts]

    def _commit(self, consumer: Consumer, batches: list[Batch]) -> None:
        offsets = [
            TopicPartition(b.plan.topic, b.plan.partition, b.plan.last_offset + 1) for b in batches
        ]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The rows are loaded under recorded plans: whoever reads these offsets again
            # rebuilds the same loads and ClickHouse drops them as duplicates.
            log.warning("offset commit failed (%s); the loads will be replayed harmlessly", exc)
        for tp in offsets:
            try:
                _, high = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high >= 0:
                self._metrics.lag.labels(tp.topic, str(tp.partition)).set(max(high - tp.offset, 0))

    # ---- rebalancing ------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._plans.pop((tp.topic, tp.partition), None)
        log.info("assigned %d partition(s)", len(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Finish the load in flight (its offsets are committed while the partitions are
        still ours), then drop what is buffered for the revoked partitions, unloaded and
        uncommitted: their next owner re-reads it and replays any recorded plan."""
        self._finish(consumer)
        self._forget(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions lost without a clean revoke: commits would fail, so only forget."""
        if self._inflight is not None:
            self._inflight[0].exception()  # let the write end before forgetting its batches
            self._pending = self._inflight[1] + self._pending
            self._inflight = None
        self._forget(partitions)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._buffer.forget(list(gone))
        for key in gone:
            self._plans.pop(key, None)
        self._pending = [b for b in self._pending if (b.plan.topic, b.plan.partition) not in gone]
        for tp in partitions:
            with contextlib.suppress(KeyError):
                self._metrics.lag.remove(tp.topic, str(tp.partition))
