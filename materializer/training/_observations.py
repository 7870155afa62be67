"""Observations: the labelled rows a training set is built for (the article's
``append_observation(userId, postId, now())``), posted one by one, in batches, or loaded
from a Parquet/CSV file, into the ``observations`` table under a spine name."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import uuid_utils
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from materializer.training._model import (
    OBSERVATION_ID,
    OBSERVED_AT,
    ObservationsSpine,
    check_identifier,
)
from sluicegate.errors import BadRequest, Forbidden, StoreUnavailable, Unprocessable
from sluicegate.violations import first_message, violations

__all__ = [
    "Observation",
    "SpineWriter",
    "append_observations",
    "claim_spine",
    "load_spine_file",
    "read_spine_table",
    "spine_summary",
]

_COLUMNS = ["spine", "observation_id", "observed_at", "entities", "labels"]
_INSERT_CHUNK = 200_000

LabelValue = str | int | float | bool | None


class Observation(BaseModel):
    """One observed outcome: the entity keys it concerns (by entity type), when it was
    observed (default: now) and its labels. ``id`` makes a re-post replace, not duplicate."""

    model_config = ConfigDict(extra="forbid")

    entities: dict[str, str | int] = Field(min_length=1)
    time: datetime | None = None
    labels: dict[str, LabelValue] = Field(default_factory=dict)
    id: str | None = Field(None, min_length=1, max_length=200)

    @field_validator("entities")
    @classmethod
    def _entities(cls, v: dict[str, str | int]) -> dict[str, str | int]:
        for etype in v:
            check_identifier(etype, "entity type")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, LabelValue]) -> dict[str, LabelValue]:
        for name in v:
            check_identifier(name, "label name")
            if name in (OBSERVATION_ID, OBSERVED_AT):
                raise ValueError(f"label name {name!r} is reserved")
        return v

    @field_validator("time")
    @classmethod
    def _time(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            return v.replace(tzinfo=UTC)  # a time without an offset is UTC
        return v


def _check_spine(name: str) -> str:
    ObservationsSpine(name)  # validates the name
    return name


@dataclass(frozen=True)
class SpineWriter:
    """Who writes to a spine over the API: their team, and whether they are admin."""

    team: str
    admin: bool = False


def _spine_owner(client: Client, database: str, spine: str) -> str | None:
    rows = client.query(
        f"SELECT team FROM `{database}`.`spine_owners` WHERE spine = {{s:String}} "
        "ORDER BY claimed_at, team LIMIT 1",
        parameters={"s": spine},
    ).result_rows
    return str(rows[0][0]) if rows else None


def claim_spine(client: Client, spine: str, writer: SpineWriter, *, database: str) -> None:
    """Make sure ``writer`` may write to ``spine``: the first team to write to a spine owns
    it; another team's write is :class:`Forbidden` (admin may write to any spine)."""
    try:
        owner = _spine_owner(client, database, spine)
        if owner is None:
            client.insert(
                f"`{database}`.`spine_owners`",
                [[spine, writer.team]],
                column_names=["spine", "team"],
            )
            owner = _spine_owner(client, database, spine)
    except ClickHouseError as exc:
        raise StoreUnavailable("ClickHouse: could not read the spine's owner") from exc
    if owner != writer.team and not writer.admin:
        raise Forbidden(
            f"spine {spine!r} belongs to team {owner!r}; only that team (or "
            "admin) may add observations to it"
        )


def _insert(client: Client, table: str, columns: list[list[Any]]) -> None:
    total = len(columns[0])
    try:
        for start in range(0, total, _INSERT_CHUNK):
            chunk = [col[start : start + _INSERT_CHUNK] for col in columns]
            client.insert(table, chunk, column_names=_COLUMNS, column_oriented=True)
    except ClickHouseError as exc:
        raise StoreUnavailable(f"ClickHouse: could not store observations: {exc}") from exc


def append_observations(
    client: Client,
    spine: str,
    observations: Iterable[Observation | dict[str, Any]],
    *,
    database: str,
    writer: SpineWriter | None = None,
) -> list[str]:
    """Store ``observations`` under ``spine``; returns their ids (generated when absent).
    With ``writer`` (an API caller) the spine must be theirs (see :func:`claim_spine`)."""
    _check_spine(spine)
    now = datetime.now(UTC)
    ids: list[str] = []
    times: list[datetime] = []
    entities: list[dict[str, str]] = []
    labels: list[str] = []
    for n, item in enumerate(observations):
        obs = item if isinstance(item, Observation) else _validated(n, item)
        ids.append(obs.id or str(uuid_utils.uuid7()))
        times.append(obs.time or now)
        entities.append({k: str(v) for k, v in obs.entities.items()})
        labels.append(orjson.dumps(obs.labels).decode())
    if ids and writer is not None:
        claim_spine(client, spine, writer, database=database)
    if ids:
        _insert(
            client,
            f"`{database}`.`observations`",
            [[spine] * len(ids), ids, times, entities, labels],
        )
    return ids


def _validated(n: int, item: dict[str, Any]) -> Observation:
    try:
        return Observation.model_validate(item)
    except ValidationError as exc:
        found = violations(exc.errors(), prefix=("observations", str(n)))
        raise Unprocessable(first_message(found), violations=found) from exc


def read_spine_table(data: bytes, fmt: str) -> pa.Table:
    """Parse an uploaded spine file (``parquet`` or ``csv``)."""
    try:
        if fmt == "parquet":
            return pq.read_table(io.BytesIO(data))
        if fmt == "csv":
            return pa_csv.read_csv(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise BadRequest(f"spine file: not a readable {fmt} file: {exc}") from exc
    raise BadRequest(f"spine file: unknown format {fmt!r}; use parquet or csv")


def _time_column(table: pa.Table, name: str) -> list[datetime]:
    if name not in table.column_names:
        raise BadRequest(
            f"spine file: no time column {name!r} (columns: {', '.join(table.column_names)})"
        )
    col = table.column(name)
    try:
        if pa.types.is_timestamp(col.type):
            if col.type.tz is None:
                col = pc.assume_timezone(col, "UTC")
        elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = pc.cast(col, pa.timestamp("ms", tz="UTC"))
        else:
            raise BadRequest(f"spine file: column {name!r} is {col.type}, not a timestamp")
        col = pc.cast(col, pa.timestamp("ms", tz="UTC"))
    except pa.ArrowException as exc:
        raise BadRequest(f"spine file: column {name!r}: not ISO-8601 times: {exc}") from exc
    if col.null_count:
        raise BadRequest(f"spine file: column {name!r} has {col.null_count} empty times")
    return col.to_pylist()  # type: ignore[no-any-return]  # timestamps -> datetimes


def load_spine_file(
    client: Client,
    table: pa.Table,
    *,
    database: str,
    spine: str | None = None,
    time_column: str = OBSERVED_AT,
    entities: dict[str, str] | None = None,
    id_column: str | None = None,
    source_bytes: bytes | None = None,
    writer: SpineWriter | None = None,
) -> tuple[str, int]:
    """Store the rows of a spine file as observations; returns ``(spine name, rows)``.

    ``entities`` maps entity types to columns; by default every column named
    ``<type>_id`` is the key of entity ``<type>``. Every other column except the time and
    the id column is a label. Without ``spine`` the name is derived from the content
    (``file-<sha256 prefix>``) and a file already loaded is not loaded again.
    """
    cols = table.column_names
    if entities is None:
        skip = (id_column, OBSERVATION_ID)
        entities = {c[:-3]: c for c in cols if c.endswith("_id") and c not in skip}
    if not entities:
        raise BadRequest(
            "spine file: no entity columns; name them <type>_id (user_id, post_id) or pass "
            "entities explicitly (e.g. --entity user=user_col)"
        )
    for etype, column in entities.items():
        check_identifier(etype, "entity type")
        if column not in cols:
            raise BadRequest(f"spine file: entity {etype}: no column {column!r}")
    if id_column is None and OBSERVATION_ID in cols:
        id_column = OBSERVATION_ID
    if spine is None:
        digest = hashlib.sha256(source_bytes or _table_bytes(table)).hexdigest()[:16]
        spine = f"file-{digest}"
        if _spine_rows(client, database, spine):
            return spine, _spine_rows(client, database, spine)
    _check_spine(spine)
    times = _time_column(table, time_column)
    n = table.num_rows
    ids = (
        [str(v) for v in table.column(id_column).to_pylist()]
        if id_column
        else [f"{spine}:{i}" for i in range(n)]
    )
    used = {time_column, *entities.values(), *([id_column] if id_column else [])}
    label_cols = [c for c in cols if c not in used]
    for name in label_cols:
        check_identifier(name, "label column")
    key_cols = {
        etype: [None if v is None else str(v) for v in table.column(col).to_pylist()]
        for etype, col in entities.items()
    }
    entity_maps = [
        {etype: keys[i] for etype, keys in key_cols.items() if keys[i] is not None}
        for i in range(n)
    ]
    label_rows = table.select(label_cols).to_pylist() if label_cols else [{}] * n
    labels = [orjson.dumps(row, default=str).decode() for row in label_rows]
    if writer is not None:
        claim_spine(client, spine, writer, database=database)
    _insert(client, f"`{database}`.`observations`", [[spine] * n, ids, times, entity_maps, labels])
    return spine, n


def _table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def _spine_rows(client: Client, database: str, spine: str) -> int:
    try:
        return int(
            client.query(
                f"SELECT count() FROM `{database}`.`observations` FINAL WHERE spine = {{s:String}}",
                parameters={"s": spine},
            ).result_rows[0][0]
        )
    except ClickHouseError as exc:
        raise StoreUnavailable(f"ClickHouse: {exc}") from exc


def spine_summary(client: Client, spine: str, *, database: str) -> dict[str, Any]:
    """Rows, time range, entity types and label keys of an observations spine."""
    _check_spine(spine)
    try:
        row = client.query(
            "SELECT count(), min(observed_at), max(observed_at), "
            "groupUniqArrayArray(mapKeys(entities)), "
            "groupUniqArrayArray(JSONExtractKeys(labels)) "
            f"FROM `{database}`.`observations` FINAL WHERE spine = {{s:String}}",
            parameters={"s": spine},
        ).result_rows[0]
    except ClickHouseError as exc:
        raise StoreUnavailable(f"ClickHouse: {exc}") from exc
    count, first, last, etypes, label_keys = row
    return {
        "spine": spine,
        "rows": int(count),
        "first": first.replace(tzinfo=UTC).isoformat() if count else None,
        "last": last.replace(tzinfo=UTC).isoformat() if count else None,
        "entities": sorted(etypes),
        "labels": sorted(label_keys),
    }
