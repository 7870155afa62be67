"""The ClickHouse side of a load: record the plans, insert the rows under each plan's
deduplication token, and find recorded plans again after a restart."""

from __future__ import annotations

from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from materializer.loader._batch import DEAD_LETTER_COLUMNS, EVENT_COLUMNS, Batch, Plan
from sluicegate.errors import StoreUnavailable

EVENTS_TABLE = "events"
IDS_TABLE = "event_ids"
_STAGED_IDS = "_sg_load_ids"
DEAD_LETTERS_TABLE = "dead_letters"
PLANS_TABLE = "materializer_batches"
# The stored (subject, event_id) among the staged ids' subjects and ids: every row returned
# is a stored pair, and the caller matches pairs. Two sets of one column each, not one set
# of pairs: a pair's set costs several times more per row read, which matters when ids are
# not time-ordered and a load reads most granules of its subject.
LOOKUP_STAGED_IDS = (
    f"SELECT subject, event_id FROM {IDS_TABLE} "
    f"WHERE subject IN (SELECT subject FROM {_STAGED_IDS}) "
    f"AND event_id IN (SELECT event_id FROM {_STAGED_IDS})"
)
_PLAN_COLUMNS = ("topic", "partition", "first_offset", "last_offset", "token", "created_at")


class ClickHouseSink:
    """Writes loads to ClickHouse. Every ClickHouse failure surfaces as
    :class:`StoreUnavailable`; the caller retries the same batches, which is safe because
    each insert carries a deterministic ``insert_deduplication_token``.

    First write wins: a load inserts only the events whose ``(subject, event_id)`` neither
    ``event_ids`` nor an earlier row of the load holds, and records their ids after."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def write(self, batches: list[Batch]) -> None:
        """Load ``batches``: their plans first (one insert), then per batch the events
        (one insert per month partition) and the dead letters. Returns only once
        ClickHouse accepted everything."""
        try:
            self._write(batches)
        except (ClickHouseError, OSError) as exc:
            raise StoreUnavailable(f"ClickHouse did not accept the load: {exc}") from exc

    def _write(self, batches: list[Batch]) -> None:
        fresh = [b for b in batches if not b.planned]
        if fresh:
            now = datetime.now(UTC)
            self._client.insert(
                PLANS_TABLE,
                [
                    [b.plan.topic for b in fresh],
                    [b.plan.partition for b in fresh],
                    [b.plan.first_offset for b in fresh],
                    [b.plan.last_offset for b in fresh],
                    [b.plan.token for b in fresh],
                    [now] * len(fresh),
                ],
                column_names=_PLAN_COLUMNS,
                column_oriented=True,
            )
            for b in fresh:
                b.planned = True
        stored = self._stored_ids(batches)
        for batch in batches:
            batch.duplicates = batch.events.keep_first(stored)
            for month, columns in batch.events.by_month():
                self._client.insert(
                    EVENTS_TABLE,
                    columns,
                    column_names=EVENT_COLUMNS,
                    column_oriented=True,
                    settings={"insert_deduplication_token": f"{batch.plan.token}@{month}"},
                )
            if len(batch.events):
                # after the events: a load that stops between the two inserts is replayed
                # under the same tokens, its events dropped by ClickHouse, then recorded
                self._record_ids(batch)
            if batch.dead_letters:
                self._client.insert(
                    DEAD_LETTERS_TABLE,
                    [d.row() for d in batch.dead_letters],
                    column_names=DEAD_LETTER_COLUMNS,
                    settings={"insert_deduplication_token": f"{batch.plan.token}@dead"},
                )

    def _record_ids(self, batch: Batch) -> None:
        self._client.insert(
            IDS_TABLE,
            batch.events.id_columns(),
            column_names=("subject", "event_id", "ingested_at"),
            column_oriented=True,
            settings={"insert_deduplication_token": f"{batch.plan.token}@ids"},
        )

    def _stored_ids(self, batches: list[Batch]) -> set[tuple[str, str]]:
        """Which of the loads' ``(subject, event_id)`` the log already holds: the load's ids
        are staged in a temporary table of this session and looked up by primary key."""
        subjects = [s for b in batches for s in b.events.id_columns()[0]]
        if not subjects:
            return set()
        self._client.command(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGED_IDS} "
            "(subject String, event_id String) ENGINE = Memory"
        )
        self._client.command(f"TRUNCATE TABLE {_STAGED_IDS}")
        self._client.insert(
            _STAGED_IDS,
            [subjects, [e for b in batches for e in b.events.id_columns()[1]]],
            column_names=("subject", "event_id"),
            column_oriented=True,
        )
        rows = self._client.query(LOOKUP_STAGED_IDS).result_rows
        return {(str(s), str(e)) for s, e in rows}

    def plans(self, topic: str, partition: int, from_offset: int) -> list[Plan]:
        """The recorded plans of a partition that end at or after ``from_offset``, in
        offset order: loads that may have landed without their offsets being committed."""
        try:
            rows = self._client.query(
                f"SELECT DISTINCT first_offset, last_offset, token FROM {PLANS_TABLE} "
                "WHERE topic = {topic:String} AND partition = {partition:UInt32} "
                "AND last_offset >= {offset:UInt64} ORDER BY first_offset",
                parameters={"topic": topic, "partition": partition, "offset": from_offset},
            ).result_rows
        except (ClickHouseError, OSError) as exc:
            raise StoreUnavailable(f"ClickHouse did not answer: {exc}") from exc
        return [Plan(topic, partition, first, last, token) for first, last, token in rows]
