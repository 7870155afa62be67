"""ClickHouse unavailable for a while (the target table renamed away: a real ClickHouse
failure, triggered inside the process that owns the chDB store): the materializer pauses,
commits nothing past what is loaded, and loads everything exactly once when it returns.
Also: a load replayed with its recorded plan is dropped by ClickHouse."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from support.mz_support import (
    Harness,
    committed,
    delete_topics,
    envelope,
    produce,
    producer,
    wait_for,
)

from sluicegate.naming import topic_for_subject

SCHEMA = {"type": "object", "properties": {"i": {"type": "integer"}}, "required": ["i"]}


def _send(p: Producer, subject: str, reg: dict[str, Any], unique: str, lo: int, hi: int) -> None:
    produce(
        p,
        (
            envelope(
                subject,
                reg["id"],
                reg["version"],
                f"{unique}-{i}",
                f"k{i % 13}",
                1_700_000_000_000 + i,
                {"i": i},
            )
            for i in range(lo, hi)
        ),
        lambda e: orjson.dumps(e.payload),
    )


def _loaded(harness: Harness, subject: str, table: str = "events") -> int:
    query = f"SELECT count() FROM {table} WHERE subject = '{subject}'"
    return int(harness("sql", query=query)[0][0])


def _group(harness: Harness) -> str:
    return "sluicegate-materializer-" + harness("sql", query="SELECT toString(id) FROM store")[0][0]


def _assigned_topics(bootstrap: str, group: str) -> set[str]:
    """The topics the group's members hold partitions of, as the broker sees it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return {tp.topic for m in description.members for tp in m.assignment.topic_partitions}


@pytest.fixture
def harness(tmp_path: Path, stack: Any) -> Iterator[Harness]:
    h = Harness(tmp_path / "store", stack.kafka_bootstrap)
    yield h
    h.close()


def test_clickhouse_unavailable_pauses_then_loads_everything_once(
    harness: Harness, stack: Any, unique: str
) -> None:
    bootstrap: str = stack.kafka_bootstrap
    subject = f"mz.down{unique}"
    topic = topic_for_subject(subject)
    reg = harness("register", subject=subject, schema=orjson.dumps(SCHEMA).decode(), type="JSON")
    group = _group(harness)
    p = producer(bootstrap)

    def send(lo: int, hi: int) -> None:
        _send(p, subject, reg, unique, lo, hi)

    def loaded(table: str = "events") -> int:
        return _loaded(harness, subject, table)

    try:
        harness("start", topic=topic)
        send(0, 1_000)
        wait_for(lambda: loaded() == 1_000, what="the first 1,000 events")
        wait_for(lambda: committed(bootstrap, group, topic) == 1_000, what="commits")

        harness("command", sql="RENAME TABLE events TO events_offline")
        send(1_000, 3_000)
        wait_for(lambda: harness("status")["blocked"], what="the materializer to pause")
        errors = harness("status")["store_errors"]
        wait_for(
            lambda: harness("status")["store_errors"] >= errors + 2,
            what="two more failed retries",
        )
        assert harness("status")["blocked"]
        assert committed(bootstrap, group, topic) == 1_000  # nothing committed past the load
        assert loaded("events_offline") == 1_000

        harness("command", sql="RENAME TABLE events_offline TO events")
        wait_for(lambda: loaded() == 3_000, what="all 3,000 events after recovery")
        wait_for(lambda: not harness("status")["blocked"], what="the materializer to resume")
        wait_for(lambda: committed(bootstrap, group, topic) == 3_000, what="commits")
        # The harness's client reads without FINAL: these are the physical rows.
        count, distinct, total = harness(
            "sql",
            query="SELECT count(), uniqExact(event_id), sum(JSONExtractUInt(payload, 'i')) "
            f"FROM events WHERE subject = '{subject}'",
        )[0]
        assert (count, distinct, int(total)) == (3_000, 3_000, sum(range(3_000)))
    finally:
        delete_topics(bootstrap, subject)


def test_partitions_reassigned_while_paused_resume_when_clickhouse_returns(
    harness: Harness, stack: Any, unique: str
) -> None:
    """A rebalance during an outage drops the failed load (its partitions were revoked) and
    pauses the partitions it assigns: the materializer still resumes and loads everything
    once ClickHouse is back, the new topic included."""
    bootstrap: str = stack.kafka_bootstrap
    first, second = f"mz.moved{unique}", f"mz.moved{unique}_b"
    schema = orjson.dumps(SCHEMA).decode()
    regs = {s: harness("register", subject=s, schema=schema, type="JSON") for s in (first, second)}
    group = _group(harness)
    p = producer(bootstrap)
    try:
        harness("start", topic="^" + re.escape(topic_for_subject(first)) + ".*")
        _send(p, first, regs[first], unique, 0, 500)
        wait_for(lambda: _loaded(harness, first) == 500, what="the first 500 events")

        harness("command", sql="RENAME TABLE events TO events_offline")
        _send(p, first, regs[first], unique, 500, 1_000)
        wait_for(lambda: harness("status")["blocked"], what="the materializer to pause")
        # a topic matching the subscription appears: the group rebalances while paused
        _send(p, second, regs[second], f"{unique}b", 0, 300)
        wait_for(
            lambda: topic_for_subject(second) in _assigned_topics(bootstrap, group),
            what="the rebalance that assigns the new topic",
        )
        assert harness("status")["blocked"]

        harness("command", sql="RENAME TABLE events_offline TO events")
        wait_for(lambda: _loaded(harness, first) == 1_000, what="all 1,000 events of the first")
        wait_for(lambda: _loaded(harness, second) == 300, what="the 300 of the new topic")
        wait_for(lambda: not harness("status")["blocked"], what="the materializer to resume")
        distinct = harness(
            "sql",
            query="SELECT uniqExact(subject, event_id) FROM events "
            f"WHERE subject IN ('{first}', '{second}')",
        )
        assert distinct == [[1_300]]
    finally:
        delete_topics(bootstrap, first, second)


def test_replayed_load_is_dropped_by_clickhouse(harness: Harness, unique: str) -> None:
    topic = f"sg.mz.replay{unique}"
    rows = [
        [
            f"{unique}-{i}",
            "mz.replay",
            "k",
            ms,
            ms,
            "http",
            "t",
            "",
            None,
            None,
            1,
            1,
            1,
            "{}",
            topic,
            0,
            i,
        ]
        for i, ms in enumerate([1_704_067_199_000, 1_704_067_201_000, 1_706_745_600_000])
    ]  # 2023-12-31, 2024-01-01, 2024-02-01: three month partitions, one token each
    harness("replay", topic=topic, rows=rows)
    physical = harness("sql", query=f"SELECT count() FROM events WHERE kafka_topic = '{topic}'")
    assert physical == [[3]]
    plans = harness(
        "sql", query=f"SELECT count() FROM materializer_batches WHERE topic = '{topic}'"
    )
    assert plans == [[1]]
    # and the replay recorded the ids the first attempt could not
    ids = harness(
        "sql",
        query=f"SELECT count() FROM event_ids WHERE subject = 'mz.replay' "
        f"AND startsWith(event_id, '{unique}-')",
    )
    assert ids == [[3]]
