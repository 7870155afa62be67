"""The report every extraction writes: what was computed, from what, and the proof that no
value saw the future."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from materializer.training._model import FeatureSpec, ResolvedSpine

__all__ = ["TrainingReport", "build_report"]


@dataclass(frozen=True)
class TrainingReport:
    """Rows, spine, features (with versions and null rates), labels, the time range and
    the leakage audit of one extraction. ``leakage_audit["passed"]`` is True only when
    every feature's violation counts are 0."""

    rows: int
    mode: str
    spine: dict[str, Any]
    features: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    time_range: dict[str, str | None]
    leakage_audit: dict[str, Any]
    elapsed_s: float
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:  # ClickHouse DateTime64(3, 'UTC') values
            value = value.replace(tzinfo=UTC)
        return str(value.isoformat(timespec="milliseconds"))
    return str(value)


def build_report(
    *,
    spine: ResolvedSpine,
    features: Sequence[FeatureSpec],
    arrival_time: bool,
    stats: Sequence[Any],
    audit_rows: Sequence[dict[str, Any]],
    audit_query: str,
    elapsed_s: float,
    created_at: datetime,
) -> TrainingReport:
    """Assemble the report from the statistics and audit queries' rows."""
    rows, first, last, null_rates = stats
    rates = dict(
        zip(
            [*(lbl.name for lbl in spine.labels), *(f.name for f in features)],
            null_rates,
            strict=True,
        )
    )
    audit = {str(r["feature"]): r for r in audit_rows}
    checks: dict[str, dict[str, Any]] = {}
    passed = True
    for f in features:
        row = audit[f.name]
        counts = {
            "used_event_at_or_after_t": int(row["used_event_at_or_after_t"]),
            "used_event_ingested_at_or_after_t": int(row["used_event_ingested_at_or_after_t"]),
            "used_event_before_window": int(row["used_event_before_window"]),
        }
        passed = passed and not any(counts.values())
        checks[f.name] = {
            **counts,
            "rows_with_events": int(row["rows_with_events"]),
            "latest_event_used": (
                _iso(row["latest_event_used"]) if row["rows_with_events"] else None
            ),
        }
    spine_info: dict[str, Any] = {
        "kind": spine.kind,
        "source": spine.source,
        "entities": spine.entities,
    }
    if spine.start or spine.end:
        spine_info["start"], spine_info["end"] = spine.start, spine.end
    return TrainingReport(
        rows=int(rows),
        mode="arrival_time" if arrival_time else "event_time",
        spine=spine_info,
        features=[
            {
                "name": f.name,
                "version": f.version,
                "entity_type": f.entity_type,
                "subject": f.subject,
                "aggregation": f.aggregation or f.value_agg,
                "window_ms": f.window_ms,
                "default": None if f.default_sql == "NULL" else 0,
                "null_rate": float(rates[f.name]) if rows else None,
            }
            for f in features
        ],
        labels=[
            {
                "name": lbl.name,
                "type": lbl.type,
                "null_rate": float(rates[lbl.name]) if rows else None,
            }
            for lbl in spine.labels
        ],
        time_range={"first": _iso(first) if rows else None, "last": _iso(last) if rows else None},
        leakage_audit={
            "passed": passed,
            "rule": (
                "every value used only events with occurred_at < observed_at"
                + (" and ingested_at < observed_at" if arrival_time else "")
                + " (and occurred_at >= observed_at - window for windowed features)"
            ),
            "features": checks,
            "query": audit_query,
        },
        elapsed_s=round(elapsed_s, 3),
        created_at=created_at.isoformat(),
    )
