"""The bridge: consumes a database's raw Debezium topics (JSON, schemas disabled, as the
Connect worker is configured) and re-produces every change to the table's governed topic
``sg.<subject>`` in the shared envelope, under the registered version that fits the row.

Delivery: a batch's raw offsets are committed only after Kafka acknowledged every
governed record of the batch; on any failure the batch is replayed (event ids are derived
from the change, so a replay writes the same events again, which the materializer
collapses). A table whose schema change is refused is *held*: its partition is paused at
the refused row and nothing after it is committed; the held offset is committed with the
reason as its metadata, so a restarted bridge reports the hold from its first second and
replays from exactly there, as the owner's fix does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from cdc._catalog import TableInfo, describe_table
from cdc._config import DatabaseConfig
from cdc._govern import TableGovernor, TableHeld
from cdc._metrics import CdcMetrics
from cdc._translate import Outbound, Undecodable, translate
from registry import Registry
from sluicegate.envelope import CdcOp, ms_to_iso, now_ms
from sluicegate.errors import SluicegateError
from sluicegate.kafka import (
    GovernedTopics,
    bridge_consumer_config,
    bridge_producer_config,
    create_topics,
)
from sluicegate.naming import topic_for_subject

__all__ = ["DatabaseBridge", "create_raw_topics"]

log = logging.getLogger("sluicegate.cdc")

BATCH = 2000
ACK_TIMEOUT_S = 30.0
# the broker keeps up to offset.metadata.max.bytes (4096 by default) per committed offset
_NOTE_CHARS = 2000


def hold_note(since: float, error: str) -> str:
    """The commit metadata of a held table's offset: why and since when it is held, so
    that a restarted bridge reports the hold before it reaches the held change again."""
    return orjson.dumps({"held_since": since, "error": error[:_NOTE_CHARS]}).decode()


def read_hold_note(metadata: str | None) -> tuple[float, str] | None:
    """The hold a committed offset's metadata records, if any."""
    if not metadata:
        return None
    try:
        note = orjson.loads(metadata)
        return float(note["held_since"]), str(note["error"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def create_raw_topics(bootstrap: str, topics: list[str], *, timeout: float = 15.0) -> None:
    """Create the raw change topics with one partition each (a table's changes, truncates
    included, stay in commit order); existing topics are left as they are."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        create_topics(admin, topics, 1, timeout)
    except KafkaException as exc:
        raise SluicegateError(f"cannot create raw topics {', '.join(topics)}: {exc}") from exc


@dataclass
class _TableCounters:
    changes: int = 0
    last_commit_ms: int | None = None
    held_offset: int | None = None
    by_op: dict[str, int] = field(default_factory=dict)


def _where(msg: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed (non-error) record."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise Undecodable("record without a topic position")
    return topic, partition, offset


class DatabaseBridge:
    """Bridges one database's captured tables (one consumer group per database)."""

    def __init__(
        self,
        cfg: DatabaseConfig,
        *,
        registry: Registry,
        kafka_bootstrap: str,
        password: str | None,
        metrics: CdcMetrics,
        catalog_available: bool = True,
        member: str | None = None,
        topics: GovernedTopics | None = None,
    ) -> None:
        self.cfg = cfg
        self._member = member
        self._log_reader: Consumer | None = None  # watermark queries for status()
        self._lock_log = threading.Lock()
        self._topics = topics
        self._registry = registry
        self._bootstrap = kafka_bootstrap
        self._password = password
        self._metrics = metrics
        self._catalog_available = catalog_available
        self._conn: psycopg.Connection[Any] | None = None
        self.governors: dict[str, TableGovernor] = {}
        self._counters: dict[str, _TableCounters] = {}
        for t in cfg.tables:
            topic = cfg.raw_topic(t)
            describe = self._describer(t.schema_name, t.table_name)
            self.governors[topic] = TableGovernor(cfg, t, registry, describe)
            self._counters[topic] = _TableCounters()
        self._held: dict[tuple[str, int], int] = {}
        self._acked = True
        self._ack_error: str | None = None
        self._batch_ms = now_ms()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.catalog_error: str | None = (
            None
            if catalog_available
            else "catalog unavailable: environment variable "
            f"{cfg.connection.password_env} is not set"
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"cdc-{self.cfg.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._conn is not None:
            self._conn.close()
        with self._lock_log:
            if self._log_reader is not None:
                self._log_reader.close()
                self._log_reader = None

    def _in_log(self, subject: str) -> int | None:
        """Records the subject's governed topic holds (every change bridged and still
        retained, whenever it was bridged); None when Kafka does not answer."""
        topic = topic_for_subject(subject)
        with self._lock_log:
            if self._log_reader is None:
                self._log_reader = Consumer(
                    {
                        "bootstrap.servers": self._bootstrap,
                        "group.id": f"sluicegate-cdc-{self.cfg.name}-status",
                        "log_level": 0,
                    }
                )
            try:
                meta = self._log_reader.list_topics(topic, timeout=3).topics.get(topic)
                if meta is None or meta.error is not None:
                    return 0
                total = 0
                for p in meta.partitions:
                    low, high = self._log_reader.get_watermark_offsets(
                        TopicPartition(topic, p), timeout=3
                    )
                    total += high - low
                return total
            except KafkaException:
                return None

    def status(self) -> dict[str, Any]:
        tables = []
        for topic, gov in self.governors.items():
            c = self._counters[topic]
            st = gov.status()
            st.update(
                raw_topic=topic,
                changes=c.changes,
                changes_in_log=self._in_log(gov.subject),
                by_op=dict(c.by_op),
                last_commit_time=ms_to_iso(c.last_commit_ms) if c.last_commit_ms else None,
                held_offset=c.held_offset if gov.held else None,
            )
            tables.append(st)
        stopped = any(t["state"] == "stopped" for t in tables)
        starting = any(t["state"] == "starting" for t in tables)
        state = "degraded" if stopped else "starting" if starting else "running"
        return {
            "name": self.cfg.name,
            "team": self.cfg.team,
            "connector": self.cfg.connector_name,
            "bridge": "error" if self.error else state,
            "error": self.error,
            "catalog_error": self.catalog_error,
            "tables": tables,
        }

    # ------------------------------------------------------------------ catalog
    def _describer(self, schema: str, table: str) -> Callable[[], TableInfo | None]:
        def describe() -> TableInfo | None:
            if not self._catalog_available:
                return None
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = psycopg.connect(
                            host=self.cfg.connection.host,
                            port=self.cfg.connection.port,
                            dbname=self.cfg.connection.dbname,
                            user=self.cfg.connection.user,
                            password=self._password,
                            autocommit=True,
                            connect_timeout=self.cfg.connection.connect_timeout_s,
                            application_name="sluicegate-cdc-bridge",
                        )
                    info = describe_table(self._conn, schema, table)
                    self.catalog_error = None
                    return info
                except psycopg.Error as exc:
                    self._conn = None
                    text = str(exc).strip()
                    first = text.splitlines()[0] if text else type(exc).__name__
                    self.catalog_error = f"catalog unavailable: {first}"
                    if attempt == 2:
                        return None
            return None

        return describe

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._consume()
                return
            except Exception as exc:  # any failure: report it, back off, start again
                self.error = f"{type(exc).__name__}: {exc}"
                self._metrics.errors.labels(self.cfg.name, "loop").inc()
                if time.monotonic() - started > 60:
                    backoff = 1.0  # it ran fine for a while: not the same failure again
                log.exception("cdc bridge %s failed; restarting in %.0f s", self.cfg.name, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _consume(self) -> None:
        topics = list(self.governors)
        create_raw_topics(self._bootstrap, topics)
        if self._topics is not None:
            for gov in self.governors.values():
                self._topics.ensure(topic_for_subject(gov.subject))
        consumer = Consumer(
            bridge_consumer_config(self._bootstrap, self.cfg.name, topics, self._member)
        )
        producer = Producer(bridge_producer_config(self._bootstrap, self.cfg.name, ACK_TIMEOUT_S))
        self._held.clear()
        self._remember_holds(consumer, topics)

        def on_revoke(_: Consumer, partitions: list[TopicPartition]) -> None:
            for p in partitions:
                self._held.pop((p.topic, p.partition), None)

        consumer.subscribe(topics, on_revoke=on_revoke)
        try:
            while not self._stop.is_set():
                self._release(consumer)
                # block for the first record only, then take what is already fetched: low
                # latency when quiet, large batches under load
                messages = consumer.consume(1, timeout=0.2)
                if messages:
                    messages += consumer.consume(BATCH - 1, timeout=0)
                    self._process(messages, consumer, producer)
                self.error = None
        finally:
            consumer.close()
            producer.flush(5)

    def _remember_holds(self, consumer: Consumer, topics: list[str]) -> None:
        """Show the holds an earlier process committed (raw topics have one partition)."""
        try:
            committed = consumer.committed([TopicPartition(t, 0) for t in topics], timeout=10)
        except KafkaException as exc:
            log.warning("cdc %s: committed offsets not read: %s", self.cfg.name, exc)
            committed = []
        for tp in committed:
            gov = self.governors.get(tp.topic)
            if gov is not None and not gov.held:
                gov.remembered = read_hold_note(tp.metadata)
        for gov in self.governors.values():
            gov.started = True

    def _release(self, consumer: Consumer) -> None:
        for (topic, partition), offset in list(self._held.items()):
            if self.governors[topic].try_release():
                tp = TopicPartition(topic, partition, offset)
                consumer.resume([TopicPartition(topic, partition)])
                consumer.seek(tp)
                del self._held[(topic, partition)]
                self._metrics.stopped.labels(self.cfg.name, self.governors[topic].table.name).set(0)

    def _hold(self, consumer: Consumer, topic: str, partition: int, offset: int) -> None:
        self._held[(topic, partition)] = offset
        self._counters[topic].held_offset = offset
        consumer.pause([TopicPartition(topic, partition)])
        self._metrics.stopped.labels(self.cfg.name, self.governors[topic].table.name).set(1)

    def _process(self, messages: list[Message], consumer: Consumer, producer: Producer) -> None:
        upto: dict[tuple[str, int], int] = {}
        held: dict[tuple[str, int], int] = {}
        out: list[Outbound] = []
        self._batch_ms = now_ms()  # the batch's ingestion time
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                if err.code() != KafkaError._PARTITION_EOF:
                    log.debug("cdc %s consumer: %s", self.cfg.name, err)
                continue
            topic, partition, offset = _where(msg)
            tp = (topic, partition)
            if tp in self._held:
                continue  # replayed from the held offset once the table is released
            gov = self.governors[topic]
            record: Outbound | None = None
            try:
                if gov.held:
                    raise TableHeld(gov.error)
                raw = msg.value()
                if raw is None:  # the tombstone after a delete: the delete itself was written
                    self._metrics.tombstones.labels(self.cfg.name, gov.table.name).inc()
                else:
                    record = translate(
                        gov, raw, msg.key(), topic, batch_ms=self._batch_ms, team=self.cfg.team
                    )
                gov.remembered = None
            except TableHeld:
                self._hold(consumer, topic, partition, offset)
                held[tp] = offset
                continue
            except Undecodable as exc:
                gov.hold_undecodable(f"undecodable change at {topic}[{partition}]@{offset}: {exc}")
                self._hold(consumer, topic, partition, offset)
                held[tp] = offset
                continue
            if record is not None:
                out.append(record)
            upto[tp] = offset + 1
        if out:
            self._produce(out, producer)
            if not self._acked:
                # nothing of this batch is committed: the restarted consumer replays it from
                # the committed offsets, with the same event ids
                raise SluicegateError(f"governed produce not acknowledged: {self._ack_error}")
        # only now: every governed record of the batch is acknowledged; a partition held
        # in this batch commits its held offset with the reason
        offsets = [TopicPartition(t, p, o) for (t, p), o in upto.items() if (t, p) not in held]
        for (t, p), o in held.items():
            gov = self.governors[t]
            note = hold_note(gov.held_since or time.time(), gov.error or "held")
            offsets.append(TopicPartition(t, p, o, note))
        if offsets:
            consumer.commit(offsets=offsets, asynchronous=True)
        self._account(out)

    def _produce(self, out: list[Outbound], producer: Producer) -> None:
        self._acked, self._ack_error = True, None

        def on_delivery(err: KafkaError | None, _: Message) -> None:
            if err is not None:
                self._acked = False
                self._ack_error = str(err)

        for r in out:
            while True:
                try:
                    producer.produce(
                        r.topic, r.value, r.key, headers=r.headers, on_delivery=on_delivery
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
        remaining = producer.flush(ACK_TIMEOUT_S + 5)
        if remaining:
            self._acked = False
            self._ack_error = f"{remaining} records not acknowledged in {ACK_TIMEOUT_S:.0f} s"

    def _account(self, out: list[Outbound]) -> None:
        now = now_ms()
        lag = self._metrics.lag.labels(self.cfg.name)
        counts: dict[tuple[str, str], int] = {}
        for r in out:
            counts[(r.table, r.op)] = counts.get((r.table, r.op), 0) + 1
            if r.commit_ms is not None:
                self._counters[r.table].last_commit_ms = r.commit_ms
                if r.op != CdcOp.READ:
                    lag.observe(max(0, now - r.commit_ms) / 1000)
        for (table, op), n in counts.items():
            c = self._counters[table]
            c.changes += n
            c.by_op[op] = c.by_op.get(op, 0) + n
            self._metrics.changes.labels(self.cfg.name, self.governors[table].table.name, op).inc(n)
