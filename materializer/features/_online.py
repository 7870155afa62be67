"""Online reads of the feature tables: an entity type's features for a batch of keys in
one query (:func:`materializer.features.sql.online_query`), and how fresh they are. Reads
use a pool of their own clients, so a backfill on the store's client never holds one up."""

from __future__ import annotations

import queue
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from materializer.features import sql
from materializer.features.definition import CompiledFeature
from sluicegate.clickhouse import error_message
from sluicegate.errors import StoreUnavailable

__all__ = ["OnlineReads"]

# point reads: one thread each (no pipeline fan-out), JSON numbers unquoted
_READ_SETTINGS = {
    "output_format_json_quote_64bit_integers": 0,
    "output_format_json_quote_denormals": 0,
    "max_threads": 1,
}


class OnlineReads:
    """Reads of feature values and freshness on a pool of reader clients."""

    def __init__(self, readers: Sequence[Client]) -> None:
        self._readers: queue.Queue[Client] = queue.Queue()
        for r in readers:
            self._readers.put(r)

    @contextmanager
    def _reader(self) -> Iterator[Client]:
        client = self._readers.get()
        try:
            yield client
        finally:
            self._readers.put(client)

    def values(
        self,
        entity_type: str,
        keys: Sequence[str],
        features: Sequence[tuple[str, CompiledFeature, sql.Objects]],
        now_ms: int,
    ) -> dict[str, dict[str, Any]]:
        """``{key: {label: value}}`` of ``features`` (label, compiled form, objects) as of
        ``now_ms``; an entity without events gets the defaults (0 for counts, else null)."""
        out: dict[str, dict[str, Any]] = {
            k: {label: (0 if cf.default_sql == "0" else None) for label, cf, _ in features}
            for k in keys
        }
        if not features or not keys:
            return out
        query = sql.online_query(
            sql.entity_table(entity_type), keys, [(cf, objs) for _, cf, objs in features], now_ms
        )
        try:
            with self._reader() as reader:
                rows = reader.query(query.sql, settings=_READ_SETTINGS).result_rows
        except ClickHouseError as exc:
            raise StoreUnavailable(f"feature read failed: {error_message(exc)}") from exc
        for entity, values, *counts in rows:
            for (label, _, _), value, count in zip(
                features, orjson.loads(values), query.presence, strict=True
            ):
                if count is None or counts[count]:
                    out[entity][label] = value
        return out

    def freshness_ms(self, objects: sql.Objects) -> int | None:
        """The occurred_at of the newest event a feature version has taken in."""
        try:
            with self._reader() as reader:
                row = reader.query(sql.freshness(objects)).result_rows[0]
        except ClickHouseError:
            return None
        return int(row[0]) if row[1] else None

    def freshness_lags(self, subjects: Sequence[str]) -> dict[str, int]:
        """Per subject: the time its most recently loaded event took from acceptance to
        `events`, i.e. to its features (views apply at insert); subjects without events
        are absent."""
        if not subjects:
            return {}
        try:
            with self._reader() as reader:
                rows = reader.query(sql.freshness_lag(sorted(set(subjects)))).result_rows
        except ClickHouseError:
            return {}
        return {str(subject): max(0, int(lag)) for subject, lag in rows}
