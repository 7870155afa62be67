"""The lazy training-set job: nothing runs until a result is asked for.

``to_sql()`` shows the query; ``to_arrow()`` / ``to_pandas()`` / ``to_parquet()`` run it
once (the result and its report are kept), materializing the extraction with lineage
columns into a scratch table so the report's statistics and leakage audit are queries
over exactly the rows returned.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from materializer.training import sql
from materializer.training._model import (
    RESERVED_COLUMNS,
    FeatureSpec,
    ResolvedSpine,
)
from materializer.training._report import TrainingReport, build_report
from sluicegate.errors import BadRequest, StoreUnavailable
from sluicegate.sqlgate import FunctionAllowlist, load_allowlist

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["REPORT_METADATA_KEY", "TrainingJob"]

REPORT_METADATA_KEY = b"sluicegate.training_report"
# The spine CTE is MATERIALIZED (computed once, not per reference) when this is on; the
# printed SQL leaves it to the session so it also runs on a read-only connection.
_RUN_SETTINGS = {"enable_materialized_cte": 1, "join_use_nulls": 1}


def _allowlist(client: Client) -> FunctionAllowlist:
    """The functions of the connected ClickHouse that expressions may call."""
    try:
        return load_allowlist(client)
    except ClickHouseError as exc:
        raise StoreUnavailable(f"ClickHouse: {exc}") from exc


def _check_columns(spine: ResolvedSpine, features: Sequence[FeatureSpec]) -> None:
    if not features:
        raise BadRequest("features: name at least one feature")
    seen: dict[str, str] = dict.fromkeys(RESERVED_COLUMNS, "a spine column")
    for etype in spine.entities:
        seen.setdefault(etype, "an entity column")
    for label in spine.labels:
        if label.name in seen:
            raise BadRequest(f"label {label.name!r}: clashes with {seen[label.name]}")
        seen[label.name] = "a label column"
    for f in features:
        if f.name in seen:
            raise BadRequest(f"feature {f.name!r}: clashes with {seen[f.name]} of the spine")
        seen[f.name] = "another feature"
        if f.entity_type not in spine.entities:
            have = ", ".join(spine.entities) or "none"
            raise BadRequest(
                f"feature {f.name!r} is keyed by entity {f.entity_type!r}, which the spine "
                f"does not have (spine entities: {have})"
            )


class TrainingJob:
    """A point-in-time training set, computed on demand (see the module docstring)."""

    def __init__(
        self,
        client: Client,
        spine: ResolvedSpine,
        features: Sequence[FeatureSpec],
        *,
        database: str,
        arrival_time: bool = False,
        functions: FunctionAllowlist | None = None,
        hot_events_per_window: int = sql.HOT_EVENTS_PER_WINDOW,
    ) -> None:
        """``functions``: the SQL gate's allowlist, which tells the aggregate calls of an
        expression (read from ``client`` when first needed). ``hot_events_per_window``:
        entities with more events per window read windowed features from bucket states."""
        _check_columns(spine, features)
        self._client = client
        self.spine = spine
        self.features = list(features)
        self.database = database
        self.arrival_time = arrival_time
        self._functions = functions
        self._hot_events = hot_events_per_window
        self._hot: dict[str, list[str]] | None = None
        self._differences: dict[str, str] | None = None
        self._event_types: dict[str, str] | None = None
        self._table: pa.Table | None = None
        self._report: TrainingReport | None = None

    def _names(self) -> FunctionAllowlist:
        if self._functions is None:
            self._functions = _allowlist(self._client)
        return self._functions

    def _difference_types(self) -> dict[str, str]:
        """Windowed features evaluated as differences of running totals, with their type."""
        if self._differences is None:
            windowed = [f for f in self.features if f.window_ms is not None]
            self._differences = {}
            if windowed and not self.arrival_time:
                try:
                    row = self._client.query(
                        sql.value_types_sql(windowed, self.database)
                    ).result_rows[0]
                except ClickHouseError as exc:
                    raise _map_error(exc) from exc
                names = self._names()
                self._differences = {
                    f.name: str(t)
                    for f, t in zip(windowed, row, strict=True)
                    if sql.is_invertible(f, str(t), names)
                }
        return self._differences

    def _events_columns(self) -> dict[str, str]:
        """The `events` table's columns and their types, in table order."""
        if self._event_types is None:
            try:
                rows = self._client.query(
                    "SELECT name, type FROM system.columns WHERE database = {db:String} "
                    "AND table = 'events' ORDER BY position",
                    parameters={"db": self.database},
                ).result_rows
            except ClickHouseError as exc:
                raise _map_error(exc) from exc
            self._event_types = {str(name): str(kind) for name, kind in rows}
        return self._event_types

    def to_sql(self) -> str:
        """The ClickHouse query, runnable as-is in clickhouse-client on the same tables."""
        return self._sql(audit=False)

    def _hot_entities(self) -> dict[str, list[str]]:
        """Per windowed group: its entities with more events per window than
        ``hot_events_per_window`` (their rows read bucket states)."""
        if self._hot is None:
            self._hot = {}
            if not self.arrival_time:
                distinct = sql.distinct_arguments(self.features, self._names(), False)
                groups = sql.plan_groups(self.features, self._difference_types(), False, distinct)
                for g in groups:
                    if g.window_ms is None or g.distinct is not None:
                        continue
                    query = sql.spine_query(
                        self.spine,
                        self.database,
                        sql.hot_entities_sql(g, self.database, self._hot_events),
                    )
                    try:
                        rows = self._client.query(query, settings=_RUN_SETTINGS).result_rows
                    except ClickHouseError as exc:
                        raise _map_error(exc) from exc
                    if rows:
                        self._hot[g.cte] = [str(r[0]) for r in rows]
        return self._hot

    def _sql(self, *, audit: bool) -> str:
        try:
            return sql.training_set_sql(
                self.spine,
                self.features,
                database=self.database,
                arrival_time=self.arrival_time,
                functions=self._names(),
                audit=audit,
                differences=self._difference_types(),
                hot=self._hot_entities(),
                event_types=self._events_columns(),
            )
        except ValueError as exc:  # an aggregation without an aggregate function call
            raise BadRequest(f"features: {exc}") from exc

    def to_arrow(self) -> pa.Table:
        """Run the extraction (once) and return the rows; the report is in the schema
        metadata under ``sluicegate.training_report`` and in :attr:`report`."""
        if self._table is None:
            self._run()
        assert self._table is not None
        return self._table

    def to_pandas(self) -> pd.DataFrame:
        return self.to_arrow().to_pandas()

    def to_parquet(self, path: str | Path) -> TrainingReport:
        """Write the rows to ``path`` and the report as JSON next to it
        (``train.parquet`` -> ``train.report.json``)."""
        path = Path(path)
        pq.write_table(self.to_arrow(), path)
        report = self.report
        report_path(path).write_bytes(report.to_json())
        return report

    @property
    def report(self) -> TrainingReport:
        if self._report is None:
            self._run()
        assert self._report is not None
        return self._report

    def _run(self) -> None:
        started = time.monotonic()
        query = self._sql(audit=True)
        scratch = f"`{self.database}`.`training_{uuid.uuid4().hex}`"
        columns = [*self.spine.columns, *(f.name for f in self.features)]
        column_list = ", ".join(sql.ident(c) for c in columns)
        try:
            self._client.command(
                f"CREATE TABLE {scratch} ENGINE = Memory AS\n{query}", settings=_RUN_SETTINGS
            )
            try:
                table = self._client.query_arrow(
                    f"SELECT {column_list} FROM {scratch} ORDER BY observed_at, observation_id"
                )
                rated = [*(lbl.name for lbl in self.spine.labels), *(f.name for f in self.features)]
                stats = self._client.query(sql.stats_sql(scratch, rated)).result_rows[0]
                audit_query = sql.audit_sql(scratch, self.features, arrival_time=self.arrival_time)
                audit = self._client.query(audit_query).named_results()
                audit_rows = list(audit)
            finally:
                self._client.command(f"DROP TABLE IF EXISTS {scratch}")
        except ClickHouseError as exc:
            raise _map_error(exc) from exc
        self._report = build_report(
            spine=self.spine,
            features=self.features,
            arrival_time=self.arrival_time,
            stats=stats,
            audit_rows=audit_rows,
            audit_query=audit_query.replace(scratch, "<extraction>"),
            elapsed_s=time.monotonic() - started,
            created_at=datetime.now(UTC),
        )
        meta = dict(table.schema.metadata or {})
        meta[REPORT_METADATA_KEY] = self._report.to_json()
        self._table = table.replace_schema_metadata(meta)


def report_path(output: Path) -> Path:
    """Where the report of ``output`` goes: ``train.parquet`` -> ``train.report.json``."""
    return output.with_name(output.stem + ".report.json")


def _map_error(exc: ClickHouseError) -> Exception:
    text = str(exc)
    # ClickHouse's own codes for a query the user's definitions made invalid
    for code in ("Code: 47.", "Code: 43.", "Code: 62.", "Code: 184.", "Code: 215.", "Code: 36."):
        if code in text:
            return BadRequest(f"the training-set query was refused by ClickHouse: {text[:2000]}")
    return StoreUnavailable(f"ClickHouse: {text[:2000]}")


def report_from_arrow(data: pa.Table | pa.Schema) -> dict[str, Any] | None:
    """The report stored in a training set's schema metadata (of a table, or of a schema
    such as ``pyarrow.parquet.read_schema("train.parquet")``), if any."""
    schema = data.schema if isinstance(data, pa.Table) else data
    meta = schema.metadata or {}
    raw = meta.get(REPORT_METADATA_KEY)
    return orjson.loads(raw) if raw else None
