"""Which spines training sets were built on, with which feature versions
(``training_runs``): recorded for every extraction the server runs, read by the impact of
a schema change."""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from materializer.training._report import TrainingReport
from sluicegate.clickhouse import error_message
from sluicegate.envelope import ms_to_iso, now_ms
from sluicegate.errors import StoreUnavailable

__all__ = ["record_run", "spines_using"]

_TABLE = "training_runs"


def record_run(client: Client, report: TrainingReport, team: str, *, database: str) -> None:
    """Record one extraction (its spine, the ``name@version`` of each feature, the rows)."""
    kind, name = str(report.spine["kind"]), str(report.spine["source"])
    refs = [f"{f['name']}@{f['version']}" for f in report.features]
    try:
        client.insert(
            f"{database}.{_TABLE}",
            [[name, kind, refs, team, report.rows, now_ms()]],
            column_names=["spine", "spine_kind", "features", "team", "rows", "at"],
        )
    except ClickHouseError as exc:
        raise StoreUnavailable(f"ClickHouse: {error_message(exc)}") from exc


def spines_using(client: Client, refs: list[str], *, database: str) -> list[dict[str, Any]]:
    """The spines training sets joined any of ``refs`` (``name@version``) to: per spine, the
    features among them, the teams, how often and when last."""
    if not refs:
        return []
    try:
        rows = client.query(
            "SELECT spine, spine_kind, "
            "arraySort(groupUniqArrayArray(arrayFilter(f -> has({refs:Array(String)}, f), "
            "features))), arraySort(groupUniqArray(team)), count(), "
            f"toUnixTimestamp64Milli(max(at)) FROM {database}.{_TABLE} "
            "WHERE hasAny(features, {refs:Array(String)}) "
            "GROUP BY spine, spine_kind ORDER BY spine",
            parameters={"refs": refs},
        ).result_rows
    except ClickHouseError as exc:
        raise StoreUnavailable(f"ClickHouse: {error_message(exc)}") from exc
    return [
        {
            "spine": spine,
            "kind": kind,
            "features": list(features),
            "teams": list(teams),
            "training_sets": int(n),
            "last_at": ms_to_iso(int(last)),
        }
        for spine, kind, features, teams, n, last in rows
    ]
