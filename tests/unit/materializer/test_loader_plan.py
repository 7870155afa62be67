"""Cutting buffered records into loads, and replaying recorded plans after a restart."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from materializer.loader._batch import Plan
from materializer.loader._plan import Buffer, cut

TP = ("sg.a", 0)


@dataclass
class Rec:
    _topic: str
    _partition: int
    _offset: int

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def recs(offsets: list[int], tp: tuple[str, int] = TP) -> list[Rec]:
    return [Rec(tp[0], tp[1], o) for o in offsets]


def test_fresh_load_takes_everything_up_to_the_limit() -> None:
    records = recs(list(range(10, 20)))
    assert cut(TP, records, deque(), 100) == (10, Plan.for_range("sg.a", 0, 10, 19), False)
    count, plan, planned = cut(TP, records, deque(), 4) or (0, None, None)
    assert (count, plan, planned) == (4, Plan.for_range("sg.a", 0, 10, 13), False)


def test_token_names_the_exact_range() -> None:
    assert Plan.for_range("sg.a", 3, 5, 9).token == "sg.a/3/5-9"


def test_recorded_plan_is_replayed_with_its_boundaries_and_token() -> None:
    recorded = Plan("sg.a", 0, 10, 14, "tok-1")
    plans = deque([recorded, Plan("sg.a", 0, 15, 30, "tok-2")])
    records = recs(list(range(10, 20)))
    assert cut(TP, records, plans, 3) == (5, recorded, True)  # the limit does not split it
    assert [p.token for p in plans] == ["tok-2"]


def test_waits_until_a_recorded_range_is_fully_buffered() -> None:
    plans = deque([Plan("sg.a", 0, 10, 30, "tok")])
    assert cut(TP, recs([10, 11, 12]), plans, 100) is None
    assert len(plans) == 1


def test_offset_gaps_inside_a_recorded_range() -> None:
    plans = deque([Plan("sg.a", 0, 10, 20, "tok")])
    records = recs([10, 13, 20, 22])  # gaps: transaction markers, compaction
    assert cut(TP, records, plans, 100) == (3, Plan("sg.a", 0, 10, 20, "tok"), True)


def test_records_before_a_recorded_range_form_a_fresh_load() -> None:
    plans = deque([Plan("sg.a", 0, 15, 20, "tok")])
    count, plan, planned = cut(TP, recs(list(range(10, 21))), plans, 100) or (0, None, None)
    assert (count, plan, planned) == (5, Plan.for_range("sg.a", 0, 10, 14), False)
    assert len(plans) == 1


def test_plans_already_behind_the_records_are_dropped() -> None:
    plans = deque([Plan("sg.a", 0, 0, 9, "old")])
    assert cut(TP, recs([10, 11]), plans, 100) == (2, Plan.for_range("sg.a", 0, 10, 11), False)
    assert not plans


def test_buffer_counts_takes_and_ignores_redelivered_offsets() -> None:
    buf = Buffer()
    for r in recs([1, 2, 3]) + recs([0, 1], ("sg.b", 2)):
        buf.add(r, now=5.0)
    buf.add(Rec("sg.a", 0, 2), now=6.0)  # redelivered after a pause
    assert buf.rows == 5 and buf.oldest == 5.0
    buf.take(TP, 2)
    assert [r.offset() for r in buf.records[TP]] == [3]
    buf.forget([("sg.b", 2)])
    assert buf.rows == 1 and ("sg.b", 2) not in buf.records
    buf.take(TP, 1)
    assert buf.rows == 0 and buf.oldest is None and not buf.records
    buf.add(Rec("sg.b", 2, 0), now=7.0)  # a forgotten partition starts over
    assert buf.rows == 1
