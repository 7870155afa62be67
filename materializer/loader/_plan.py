"""Buffered records per partition and how they are cut into loads.

A load is one partition's contiguous offset range. After a restart the recorded plans of a
partition are replayed first, with their exact boundaries, so each is inserted under the
token it had before; only then are new ranges cut."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from typing import Protocol

from materializer.loader._batch import Plan

TopicPartition = tuple[str, int]


class Positioned(Protocol):
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


def _offset(record: Positioned) -> int:
    return record.offset() or 0


class Buffer:
    """Records waiting to be loaded, per partition, in offset order."""

    def __init__(self) -> None:
        self.records: dict[TopicPartition, list[Positioned]] = {}
        self.rows = 0
        self.oldest: float | None = None  # monotonic time of the oldest buffered record
        self._next: dict[TopicPartition, int] = {}

    def add(self, record: Positioned, now: float) -> None:
        """Buffer ``record``; a record at or below an offset already buffered (redelivered
        after a pause) is ignored."""
        tp = (record.topic() or "", record.partition() or 0)
        offset = _offset(record)
        if offset < self._next.get(tp, -1):
            return
        self._next[tp] = offset + 1
        self.records.setdefault(tp, []).append(record)
        self.rows += 1
        if self.oldest is None:
            self.oldest = now

    def take(self, tp: TopicPartition, count: int) -> None:
        """Drop the first ``count`` records of ``tp`` (they were loaded)."""
        records = self.records[tp]
        del records[:count]
        self.rows -= count
        if not records:
            del self.records[tp]
        if not self.records:
            self.oldest = None

    def forget(self, tps: list[TopicPartition]) -> None:
        """Drop everything of ``tps`` (revoked): the next owner re-reads it from Kafka."""
        for tp in tps:
            self.rows -= len(self.records.pop(tp, []))
            self._next.pop(tp, None)
        if not self.records:
            self.oldest = None


def cut(
    tp: TopicPartition, records: list[Positioned], plans: deque[Plan], limit: int
) -> tuple[int, Plan, bool] | None:
    """The next load of ``tp`` from its buffered ``records``: (how many records, the plan,
    whether the plan was recorded before), or None while a recorded plan's range is not
    fully buffered yet. ``plans`` holds the recorded plans not yet replayed; a replayed
    one is removed from it."""
    first = _offset(records[0])
    while plans and plans[0].last_offset < first:
        plans.popleft()
    if plans and plans[0].first_offset <= _offset(records[-1]):
        plan = plans[0]
        if plan.first_offset > first:
            # Records before the next recorded range form a fresh load ending before it.
            count = min(bisect_left(records, plan.first_offset, key=_offset), limit)
        else:
            if _offset(records[-1]) < plan.last_offset:
                return None
            plans.popleft()
            return bisect_right(records, plan.last_offset, key=_offset), plan, True
    else:
        count = min(len(records), limit)
    return count, Plan.for_range(tp[0], tp[1], first, _offset(records[count - 1])), False
