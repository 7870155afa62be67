"""The store's side of repairing refused records: the rejections and dead letters
ClickHouse holds, whether a dead-lettered record would load now, and the ``replays``
table that records each replay so that none happens twice."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from materializer.loader._batch import DeadLetter, EventColumns, decode_headers
from materializer.loader._decode import RecordDecoder, SchemaSource
from sluicegate.clickhouse import error_message
from sluicegate.envelope import ms_to_iso, now_ms
from sluicegate.errors import StoreUnavailable

__all__ = ["DEAD_LETTER", "REJECTION", "Kind", "ReplayLog", "dead_letter_id"]

Kind = Literal["rejection", "dead_letter"]
REJECTION: Kind = "rejection"
DEAD_LETTER: Kind = "dead_letter"


def dead_letter_id(topic: str, partition: int, offset: int) -> str:
    """The id of a dead letter in the API: where the record was on Kafka."""
    return f"{topic}:{partition}:{offset}"


def _describe(d: DeadLetter, replayed: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": dead_letter_id(d.topic, d.partition, d.offset),
        "topic": d.topic,
        "partition": d.partition,
        "offset": d.offset,
        "error": d.error,
        "at": ms_to_iso(d.at_ms),
        "key": d.key.decode(errors="replace"),
        "headers": {k: v.decode(errors="replace") for k, v in d.headers},
        "replayable": bool(d.headers),
        "replayed": replayed,
    }


class _AsRecord:
    """A dead letter in the shape of a consumed Kafka record, for the decoder."""

    def __init__(self, row: DeadLetter) -> None:
        self._row = row

    def topic(self) -> str:
        return self._row.topic

    def partition(self) -> int:
        return self._row.partition

    def offset(self) -> int:
        return self._row.offset

    def key(self) -> bytes:
        return self._row.key

    def value(self) -> bytes:
        return self._row.value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._row.headers


_REJECTION_FIELDS = (
    "id, subject, reason, violations, event, event_truncated, event_id, producer, "
    "toUnixTimestamp64Milli(received_at)"
)
_RAW: dict[str, str | dict[str, str]] = {
    "key": "bytes",
    "value": "bytes",
}  # the record's bytes as they were on Kafka
_DEAD_FIELDS = "topic, partition, offset, key, value, error, toUnixTimestamp64Milli(at), headers"


class ReplayLog:
    """Rejections, dead letters and replays in ClickHouse."""

    def __init__(self, client: Client, registry: SchemaSource) -> None:
        self._client = client
        self._registry = registry

    def _query(
        self, sql: str, formats: dict[str, str | dict[str, str]] | None = None, **parameters: Any
    ) -> list[tuple[Any, ...]]:
        try:
            result = self._client.query(sql, parameters=parameters, column_formats=formats)
            return [tuple(r) for r in result.result_rows]
        except ClickHouseError as exc:
            raise StoreUnavailable(f"ClickHouse: {error_message(exc)}") from exc

    # ---- rejections ---------------------------------------------------------------
    @staticmethod
    def _rejection(row: tuple[Any, ...], replayed: dict[str, Any] | None) -> dict[str, Any]:
        rid, subject, reason, violations, event, truncated, event_id, producer, at = row
        return {
            "id": rid,
            "subject": subject,
            "reason": reason,
            "violations": orjson.loads(violations),
            "event": event,
            "event_truncated": bool(truncated),
            "received_at": ms_to_iso(int(at)),
            "producer": producer,
            "event_id": event_id or None,
            "replayed": replayed,
        }

    def rejections(self, subject: str, limit: int) -> list[dict[str, Any]]:
        """The newest stored rejections of ``subject`` with their replay, newest first."""
        rows = self._query(
            f"SELECT {_REJECTION_FIELDS} FROM rejections FINAL WHERE subject = {{s:String}} "
            "ORDER BY received_at DESC, id DESC LIMIT {n:UInt32}",
            s=subject,
            n=limit,
        )
        done = self.replays(REJECTION, [str(r[0]) for r in rows])
        return [self._rejection(r, done.get(str(r[0]))) for r in rows]

    def rejection(self, subject: str, rejection_id: str) -> dict[str, Any] | None:
        rows = self._query(
            f"SELECT {_REJECTION_FIELDS} FROM rejections FINAL "
            "WHERE subject = {s:String} AND id = {id:String} LIMIT 1",
            s=subject,
            id=rejection_id,
        )
        return self._rejection(rows[0], self.replayed(REJECTION, rejection_id)) if rows else None

    # ---- dead letters -------------------------------------------------------------
    def dead_letters(self, topic: str | None, limit: int) -> list[dict[str, Any]]:
        """The newest dead letters (of ``topic``, or every topic), newest first."""
        where = "WHERE topic = {t:String}" if topic is not None else ""
        rows = self._query(
            f"SELECT {_DEAD_FIELDS} FROM dead_letters FINAL {where} "
            "ORDER BY at DESC, topic, partition, offset LIMIT {n:UInt32}",
            _RAW,
            t=topic or "",
            n=limit,
        )
        letters = [self._dead(r) for r in rows]
        ids = [dead_letter_id(d.topic, d.partition, d.offset) for d in letters]
        done = self.replays(DEAD_LETTER, ids)
        return [_describe(d, done.get(i)) for d, i in zip(letters, ids, strict=True)]

    @staticmethod
    def _dead(row: tuple[Any, ...]) -> DeadLetter:
        topic, partition, offset, key, value, error, at, headers = row
        return DeadLetter(
            str(topic),
            int(partition),
            int(offset),
            bytes(key),
            bytes(value),
            str(error),
            int(at),
            decode_headers(str(headers)),
        )

    def dead_letter(self, topic: str, partition: int, offset: int) -> DeadLetter | None:
        rows = self._query(
            f"SELECT {_DEAD_FIELDS} FROM dead_letters FINAL WHERE topic = {{t:String}} "
            "AND partition = {p:UInt32} AND offset = {o:UInt64} LIMIT 1",
            _RAW,
            t=topic,
            p=partition,
            o=offset,
        )
        return self._dead(rows[0]) if rows else None

    def load_error(self, row: DeadLetter) -> str | None:
        """Why the record would still be dead-lettered if it were loaded now (None: it
        would load). Raises Unavailable when the registry cannot answer."""
        dead: list[DeadLetter] = []
        RecordDecoder(self._registry, {}).add(_AsRecord(row), EventColumns(), dead, now_ms())
        return dead[0].error if dead else None

    # ---- replays ------------------------------------------------------------------
    def replays(self, kind: Kind, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The replays of ``ids`` that happened, by id."""
        if not ids:
            return {}
        rows = self._query(
            "SELECT id, event_id, team, topic, partition, offset, "
            "toUnixTimestamp64Milli(replayed_at) FROM replays FINAL "
            "WHERE kind = {k:String} AND id IN {ids:Array(String)}",
            k=kind,
            ids=ids,
        )
        return {
            str(r[0]): {
                "event_id": r[1],
                "team": r[2],
                "topic": r[3],
                "partition": int(r[4]),
                "offset": int(r[5]),
                "at": ms_to_iso(int(r[6])),
            }
            for r in rows
        }

    def replayed(self, kind: Kind, item_id: str) -> dict[str, Any] | None:
        return self.replays(kind, [item_id]).get(item_id)

    def mark(
        self,
        kind: Kind,
        item_id: str,
        *,
        subject: str,
        event_id: str,
        team: str,
        topic: str,
        partition: int,
        offset: int,
    ) -> dict[str, Any]:
        """Record that ``item_id`` was replayed (to ``topic`` at ``partition``/``offset``)."""
        at = now_ms()
        try:
            self._client.insert(
                "replays",
                [[kind, item_id, subject, event_id, team, topic, partition, offset, at]],
                column_names=[
                    "kind",
                    "id",
                    "subject",
                    "event_id",
                    "team",
                    "topic",
                    "partition",
                    "offset",
                    "replayed_at",
                ],
            )
        except ClickHouseError as exc:
            raise StoreUnavailable(f"ClickHouse: {error_message(exc)}") from exc
        return {
            "event_id": event_id,
            "team": team,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "at": ms_to_iso(at),
        }
