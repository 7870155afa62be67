"""The ingest pipeline, independent of HTTP: resolve the subject's schema version, check the
producer's grant, validate, build the envelope, produce, and report per event.

An event is only ever reported accepted (202) after Kafka acknowledged it.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway._metrics import GatewayMetrics
from gateway._producer import Delivery, KafkaSink, OutboundRecord
from gateway._rejections import Reason, Rejections
from gateway._validation import Validators
from gateway._violation import Violation
from registry import Principal, RegisteredSchema, Registry
from sluicegate.envelope import (
    SharedHeaders,
    Source,
    entity_key_of,
    frame,
    iso_to_ms,
    new_event_id,
    now_ms,
)
from sluicegate.errors import (
    EventRejected,
    Forbidden,
    MalformedBody,
    NotFound,
    PayloadTooLarge,
    SluicegateError,
    Unavailable,
)
from sluicegate.kafka import GovernedTopics
from sluicegate.naming import topic_for_subject

__all__ = ["Gateway", "Incoming", "Outcome", "batch_event_id"]

log = logging.getLogger("sluicegate.gateway")

# occurred_at must fit ClickHouse's DateTime64 range (1900-01-01 .. 2299-12-31).
_MIN_MS = -2208988800000
_MAX_MS = 10413791999999
_MAX_EVENT_ID = 200
_BATCH_ID_NAMESPACE = uuid.UUID("5b0f3a52-7f0e-4d0c-9a57-2f1d1c6a7e31")


def batch_event_id(idempotency_key: str, index: int) -> str:
    """The event id of item ``index`` of a batch sent with an Idempotency-Key: stable, so a
    retried batch produces the same ids."""
    return str(uuid.uuid5(_BATCH_ID_NAMESPACE, f"{idempotency_key}/{index}"))


@dataclass(slots=True)
class Incoming:
    """One event of a request, before validation."""

    index: int
    subject: str
    version: int | None
    event: Any
    event_id: str | None = None
    text: str | None = None  # raw text when known (NDJSON line)
    error: SluicegateError | None = None  # failed before validation (malformed, bad item)
    occurred_at: int | None = None  # the event time when the subject names no field for it
    record_rejection: bool = True  # False for a replay: a refusal is only answered


@dataclass(slots=True)
class Outcome:
    """The answer for one event: 202 with where it was written, or the error."""

    index: int
    status: int
    body: dict[str, Any]
    error: SluicegateError | None = None


@dataclass(frozen=True, slots=True)
class _Target:
    schema: RegisteredSchema
    owner: str | None
    entity_key: list[str]
    event_time: str | None
    topic: str


@dataclass(slots=True)
class _Prepared:
    index: int
    subject: str
    target: _Target
    event_id: str
    record: OutboundRecord


def _failure(index: int, err: SluicegateError) -> Outcome:
    return Outcome(index, err.status, {"index": index, "status": err.status, **err.body()}, err)


def _lookup(payload: dict[str, Any], dotted: str) -> Any:
    value: Any = payload
    for step in dotted.split("."):
        if not isinstance(value, dict) or step not in value:
            return None
        value = value[step]
    return value


def _event_time_ms(value: Any) -> int:
    """Epoch milliseconds from RFC 3339 text or an epoch-milliseconds number."""
    if isinstance(value, str):
        ms = iso_to_ms(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if math.isnan(value):
            raise ValueError("not a number")
        ms = int(value)
    else:
        raise ValueError(
            f"expected RFC 3339 text or epoch milliseconds, got {type(value).__name__}"
        )
    if not _MIN_MS <= ms <= _MAX_MS:
        raise ValueError("outside 1900-01-01 .. 2299-12-31")
    return ms


def _violations_error(subject: str, violations: list[Violation]) -> EventRejected:
    first = violations[0]
    more = f" (+{len(violations) - 1} more)" if len(violations) > 1 else ""
    return EventRejected(
        f"{subject}: {first.path}: {first.message}{more}",
        violations=[v.as_dict() for v in violations],
    )


class Gateway:
    """Validates and produces events; one per app, shared by all requests."""

    def __init__(
        self,
        registry: Callable[[], Registry],
        sink: KafkaSink,
        metrics: GatewayMetrics,
        *,
        topics: GovernedTopics | None = None,
        retry_after_s: int = 2,
    ) -> None:
        self._registry = registry
        self._topics = topics
        self.sink = sink
        self.metrics = metrics
        self.validators = Validators()
        self.rejections = Rejections(sink, metrics)
        self._retry_after = retry_after_s

    @property
    def registry(self) -> Registry:
        return self._registry()

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is still queued (dead letters included) and stop."""
        self.sink.close(timeout)

    # -- resolution and authorization -------------------------------------------------
    def target(self, subject: str, version: int | None) -> _Target:
        """The exact schema version an event of ``subject`` is checked against (404s)."""
        reg = self.registry
        schema = reg.latest(subject) if version is None else reg.version(subject, version)
        if self._topics is not None:
            self._topics.ensure(topic_for_subject(subject))
        try:
            meta = reg.metadata(subject)
        except NotFound:
            return _Target(schema, None, [], None, topic_for_subject(subject))
        return _Target(
            schema,
            meta.owner,
            list(meta.entity_key or []),
            meta.event_time or None,
            topic_for_subject(subject),
        )

    @staticmethod
    def authorize(principal: Principal, subject: str, target: _Target) -> None:
        if not principal.can_produce(subject, target.owner):
            raise Forbidden(
                f"team {principal.team!r} may not produce to subject {subject!r}",
                subject=subject,
            )

    # -- the pipeline ------------------------------------------------------------------
    def _prepare(
        self, item: Incoming, target: _Target, shared: SharedHeaders
    ) -> _Prepared | Outcome:
        """Validate one event and build its record; ``shared`` holds the headers of the
        request's events of this subject and version (and who produces them, and when)."""
        producer = shared.producer
        payload = item.event
        schema = target.schema
        if not isinstance(payload, dict):
            bad = [
                Violation("$", "type", f"an event is a JSON object, got {type(payload).__name__}")
            ]
            return self._reject(item, bad, Reason.SCHEMA, producer)
        event_id = item.event_id
        if event_id is None:
            own = payload.get("event_id")
            event_id = (
                str(own) if isinstance(own, str | int) and not isinstance(own, bool) else None
            )
        if event_id is not None and not 0 < len(event_id) <= _MAX_EVENT_ID:
            bad = [
                Violation(
                    "$.event_id", "maxLength", f"an event id has 1 to {_MAX_EVENT_ID} characters"
                )
            ]
            return self._reject(item, bad, Reason.SCHEMA, producer)
        event_id = event_id or new_event_id()

        datum, violations = self.validators.check(schema, payload)
        reason = Reason.SCHEMA if violations else None
        occurred_at = shared.ingested_at if item.occurred_at is None else item.occurred_at
        if target.event_time:
            value = _lookup(payload, target.event_time)
            path = "$." + target.event_time
            if value is None:
                violations.append(
                    Violation(
                        path, "event_time", f"the event time field {target.event_time!r} is missing"
                    )
                )
            elif not any(v.path == path for v in violations):  # else the schema said it
                try:
                    occurred_at = _event_time_ms(value)
                except (ValueError, OverflowError) as exc:
                    violations.append(
                        Violation(path, "event_time", f"{value!r} is not an event time: {exc}")
                    )
            reason = reason or (Reason.EVENT_TIME if violations else None)
        key = event_id
        if target.entity_key:
            try:
                key = entity_key_of(payload, target.entity_key)
            except KeyError as exc:
                field = exc.args[0]
                violations.append(
                    Violation(
                        "$." + field, "entity_key", f"the entity key field {field!r} is missing"
                    )
                )
                reason = reason or Reason.ENTITY_KEY
        if violations:
            return self._reject(item, violations, reason or Reason.SCHEMA, producer, event_id)
        try:
            body = schema.encode(datum)
        except Exception as exc:  # the encoder's refusal is the event's fault, not ours
            bad = [Violation("$", "encoding", f"cannot encode for schema {schema.id}: {exc}")]
            return self._reject(item, bad, Reason.SCHEMA, producer, event_id)
        headers = shared.headers(event_id, occurred_at)
        record = OutboundRecord(target.topic, key.encode(), frame(schema.id, body), headers)
        return _Prepared(item.index, item.subject, target, event_id, record)

    @staticmethod
    def _shared(subject: str, target: _Target, producer: str, ingested_at: int) -> SharedHeaders:
        return SharedHeaders(subject, target.schema.version, Source.HTTP, producer, ingested_at)

    def _reject(
        self,
        item: Incoming,
        violations: list[Violation],
        reason: Reason,
        producer: str,
        event_id: str | None = None,
    ) -> Outcome:
        text = item.text if item.text is not None else orjson.dumps(item.event).decode()
        err = _violations_error(item.subject, violations)
        if item.record_rejection:
            err.details["rejection_id"] = self.rejections.record(
                item.subject, reason, err.details["violations"], text, producer, event_id
            )
        return _failure(item.index, err)

    def record_malformed(self, subject: str, err: MalformedBody, text: str, producer: str) -> None:
        """A body or line of a known subject that is not JSON: counted and dead-lettered."""
        violation = {"path": "$", "rule": "json", "message": err.message}
        self.rejections.record(subject, Reason.MALFORMED, [violation], text, producer)

    async def ingest(
        self, items: list[Incoming], principal: Principal, *, atomic: bool = False
    ) -> list[Outcome]:
        """Validate and produce ``items``; one outcome per item, in order.

        Atomic: nothing is produced unless every item is valid; the first failure's error
        (every violation of every item, for invalid events) is raised instead."""
        producer = principal.team
        ingested_at = now_ms()
        targets: dict[tuple[str, int | None], tuple[_Target, SharedHeaders] | SluicegateError] = {}
        outcomes: list[Outcome] = []
        ready: list[_Prepared] = []
        for item in items:
            if item.error is not None:
                outcomes.append(_failure(item.index, item.error))
                continue
            ref = (item.subject, item.version)
            found = targets.get(ref)
            if found is None:
                try:
                    target = self.target(item.subject, item.version)
                    self.authorize(principal, item.subject, target)
                    found = (target, self._shared(item.subject, target, producer, ingested_at))
                except (NotFound, Forbidden) as exc:
                    found = exc
                targets[ref] = found
            if isinstance(found, SluicegateError):
                outcomes.append(_failure(item.index, found))
                continue
            prepared = self._prepare(item, *found)
            if isinstance(prepared, Outcome):
                outcomes.append(prepared)
            else:
                ready.append(prepared)
        if atomic and outcomes:
            raise _atomic_error(outcomes)
        if ready:
            outcomes.extend(await self._produce(ready))
        outcomes.sort(key=lambda o: o.index)
        return outcomes

    async def replay(self, item: Incoming, producer: str) -> Outcome:
        """Validate ``item`` again against the subject's schema (``item.version`` or the
        latest) and produce it as ``producer`` posted it; a refusal is answered, not
        recorded as a new rejection. ``item`` carries the original event id and time."""
        try:
            target = self.target(item.subject, item.version)
        except NotFound as exc:
            return _failure(item.index, exc)
        prepared = self._prepare(
            item, target, self._shared(item.subject, target, producer, now_ms())
        )
        if isinstance(prepared, Outcome):
            return prepared
        [outcome] = await self._produce([prepared])
        return outcome

    async def produce_record(
        self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Delivery:
        """Produce one record exactly as given (a dead letter replayed as it was)."""
        [delivery] = await self.sink.send([OutboundRecord(topic, key, value, list(headers))])
        return delivery

    async def _produce(self, ready: list[_Prepared]) -> list[Outcome]:
        started = time.perf_counter()
        deliveries = await self.sink.send([p.record for p in ready])
        self.metrics.produce_seconds.observe(time.perf_counter() - started)
        outcomes = []
        accepted: dict[str, int] = {}
        for prepared, delivery in zip(ready, deliveries, strict=True):
            if delivery.ok:
                accepted[prepared.subject] = accepted.get(prepared.subject, 0) + 1
                outcomes.append(self._accepted(prepared, delivery))
            else:
                self.metrics.produce_failures.labels(prepared.subject).inc()
                outcomes.append(_failure(prepared.index, self._delivery_error(prepared, delivery)))
        for subject, n in accepted.items():
            self.metrics.accepted.labels(subject).inc(n)
        return outcomes

    @staticmethod
    def _accepted(p: _Prepared, d: Delivery) -> Outcome:
        schema = p.target.schema
        return Outcome(
            p.index,
            202,
            {
                "index": p.index,
                "status": 202,
                "event_id": p.event_id,
                "subject": p.subject,
                "version": schema.version,
                "schema_id": schema.id,
                "topic": p.target.topic,
                "partition": d.partition,
                "offset": d.offset,
            },
        )

    def _delivery_error(self, p: _Prepared, d: Delivery) -> SluicegateError:
        if d.permanent:
            return PayloadTooLarge(f"Kafka refused the record: {d.error}", event_id=p.event_id)
        log.warning("kafka did not acknowledge", extra={"subject": p.subject, "error": d.error})
        return Unavailable(
            f"Kafka did not acknowledge the event ({d.error}); retry with the same event id",
            retry_after=self._retry_after,
            event_id=p.event_id,
        )

    def unavailable(self, outcomes: list[Outcome]) -> Unavailable:
        """The 503 of a batch some of whose events Kafka did not acknowledge."""
        failed = sum(1 for o in outcomes if o.status == 503)
        return Unavailable(
            f"Kafka did not acknowledge {failed} of {len(outcomes)} events; retry those "
            "(status 503 in results) with the same event ids",
            retry_after=self._retry_after,
            results=[o.body for o in outcomes],
        )


def _atomic_error(failures: list[Outcome]) -> SluicegateError:
    """One error for an all-or-nothing batch: every violation if all failures are invalid
    events, else the first failure's own error (its item index attached)."""
    failures = sorted(failures, key=lambda o: o.index)
    if all(isinstance(o.error, EventRejected) for o in failures):
        violations = [
            {"index": o.index, **v} for o in failures for v in o.body.get("violations", [])
        ]
        first = failures[0]
        return EventRejected(
            f"atomic batch refused, {len(failures)} invalid event(s); item {first.index}: "
            f"{first.body['message']}",
            violations=violations,
        )
    first = next(o for o in failures if not isinstance(o.error, EventRejected))
    err = first.error
    assert err is not None
    return type(err)(
        f"atomic batch refused; item {first.index}: {err.message}",
        **{**err.details, "index": first.index},
    )
