"""The stored feature definitions (ClickHouse table ``feature_definitions``): one row per
(name, version), replaced by newer rows for status changes, metadata edits and rebuild
generations."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from materializer.features import sql
from materializer.features.definition import FeatureDefinition
from sluicegate.errors import ResourceNotFound, StoreUnavailable

__all__ = [
    "ACTIVE",
    "BACKFILLING",
    "DELETED",
    "FAILED",
    "Catalog",
    "FeatureRecord",
    "load_definitions",
]

BACKFILLING, ACTIVE, DELETED, FAILED = "backfilling", "active", "deleted", "failed"


@dataclass(frozen=True)
class FeatureRecord:
    """One stored feature version."""

    name: str
    version: int
    generation: int
    spec: dict[str, Any]
    status: str
    owner: str
    created_ms: int
    updated_ms: int

    @property
    def definition(self) -> FeatureDefinition:
        spec = {k: v for k, v in self.spec.items() if not k.startswith("_")}
        return FeatureDefinition.model_validate({**spec, "version": self.version})

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def objects(self) -> sql.Objects:
        return sql.Objects(
            self.name, self.version, self.generation, str(self.spec["entity"]["type"])
        )


def _split_ref(ref: str) -> tuple[str, int | None]:
    name, _, ver = ref.partition("@")
    if not ver:
        return name, None
    try:
        return name, int(ver.removeprefix("v"))
    except ValueError:
        raise ResourceNotFound(f"feature {ref!r}: a version is written name@N") from None


class Catalog:
    """Reads and writes ``feature_definitions``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def records(self) -> list[FeatureRecord]:
        try:
            rows = self._client.query(sql.select_definitions()).result_rows
        except ClickHouseError as exc:
            raise StoreUnavailable(f"feature catalog unavailable: {exc}") from exc
        return [
            FeatureRecord(
                r[0], int(r[1]), int(r[2]), orjson.loads(r[3]), r[4], r[5], int(r[6]), int(r[7])
            )
            for r in rows
        ]

    def put(self, record: FeatureRecord) -> FeatureRecord:
        """Store ``record`` (replacing the row of the same name and version)."""
        now = datetime.now(UTC)
        stored = replace(record, updated_ms=int(now.timestamp() * 1000))
        try:
            self._client.insert(
                sql.DEFINITIONS_TABLE,
                [
                    [
                        record.name,
                        record.version,
                        record.generation,
                        orjson.dumps(record.spec, option=orjson.OPT_SORT_KEYS).decode(),
                        record.status,
                        record.owner,
                        datetime.fromtimestamp(record.created_ms / 1000, UTC),
                        now,
                    ]
                ],
                column_names=[
                    "name",
                    "version",
                    "generation",
                    "spec",
                    "status",
                    "owner",
                    "created_at",
                    "updated_at",
                ],
            )
        except ClickHouseError as exc:
            raise StoreUnavailable(f"feature catalog unavailable: {exc}") from exc
        return stored

    def resolve(self, refs: list[str]) -> list[FeatureDefinition]:
        """Definitions of ``refs`` (``name`` = current active version, ``name@v`` pinned)."""
        return [r.definition for r in resolve_records(self.records(), refs)]


def current(records: list[FeatureRecord], name: str) -> FeatureRecord | None:
    """The newest active version of ``name``."""
    active = [r for r in records if r.name == name and r.status == ACTIVE]
    return max(active, key=lambda r: r.version) if active else None


def resolve_records(records: list[FeatureRecord], refs: list[str]) -> list[FeatureRecord]:
    out = []
    for ref in refs:
        name, version = _split_ref(ref)
        if version is None:
            rec = current(records, name)
        else:
            rec = next(
                (
                    r
                    for r in records
                    if r.name == name and r.version == version and r.status == ACTIVE
                ),
                None,
            )
        if rec is None:
            raise ResourceNotFound(f"feature {ref!r} not found (no active version)", feature=ref)
        out.append(rec)
    return out


def load_definitions(client: Client, names: list[str]) -> list[FeatureDefinition]:
    """The stored definitions of ``names`` (current versions; ``name@v`` pins one), in
    order. Raises ResourceNotFound naming the missing feature."""
    return Catalog(client).resolve(names)
