"""The value objects a training-set extraction is made of: the features it computes and
the spine (the rows, with their entity keys, times and labels) it computes them for."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from sluicegate.errors import BadRequest

__all__ = [
    "FeatureSpec",
    "LabelColumn",
    "ObservationsSpine",
    "ResolvedSpine",
    "SubjectSpine",
    "check_identifier",
]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
SPINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")

# Column names every training set has; labels, entity columns and features may not reuse them.
OBSERVATION_ID = "observation_id"
OBSERVED_AT = "observed_at"
RESERVED_COLUMNS = frozenset({OBSERVATION_ID, OBSERVED_AT})


def check_identifier(name: str, what: str) -> str:
    """``name`` if it is a plain SQL identifier (letters, digits, underscores), else BadRequest."""
    if not _IDENTIFIER.match(name):
        raise BadRequest(
            f"{what} {name!r}: must start with a letter or underscore and contain only "
            "letters, digits and underscores (at most 128 characters)"
        )
    return name


def check_field_path(path: str, what: str) -> str:
    """``path`` if it is a payload field path (``user_id``, ``author.id``), else BadRequest."""
    if path != "entity_key" and not _FIELD_PATH.match(path):
        raise BadRequest(f"{what} {path!r}: not a payload field path (e.g. user_id or author.id)")
    return path


@dataclass(frozen=True)
class FeatureSpec:
    """One feature as the extraction needs it: the compiled SQL fragments of its current
    (or pinned) definition. Built from ``FeatureDefinition.compiled(schema)``, never
    re-declared, so training reads exactly what online serving reads.

    ``entity_expr``, ``value_agg`` and ``filter_expr`` are SQL over the columns of
    ``events``; ``default_sql`` is ``'0'`` for count-like aggregates, ``'NULL'`` otherwise.
    """

    name: str
    version: int
    entity_type: str
    subject: str
    entity_expr: str
    value_agg: str
    filter_expr: str = "1"
    window_ms: int | None = None
    default_sql: str = "NULL"
    aggregation: str = ""

    def __post_init__(self) -> None:
        check_identifier(self.name, "feature name")
        check_identifier(self.entity_type, f"entity type of feature {self.name}")
        if self.window_ms is not None and self.window_ms <= 0:
            raise BadRequest(f"feature {self.name}: window must be positive")
        if self.default_sql not in ("0", "NULL"):
            raise BadRequest(f"feature {self.name}: default must be 0 or NULL")

    @property
    def label(self) -> str:
        return f"{self.name}@v{self.version}"


@dataclass(frozen=True)
class ObservationsSpine:
    """Rows posted to ``POST /v1/observations`` (or loaded from a file) under ``name``."""

    name: str

    def __post_init__(self) -> None:
        if not SPINE_NAME.match(self.name):
            raise BadRequest(
                f"spine name {self.name!r}: use letters, digits, '.', '_', ':' or '-' "
                "(at most 200 characters)"
            )


def _utc_time(text: str, what: str) -> str:
    """An ISO-8601 time as ClickHouse's UTC text (``2026-01-31 12:00:00.000``); naive
    times are UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except (ValueError, TypeError):
        raise BadRequest(
            f"{what}: {text!r} is not an ISO-8601 time (e.g. 2026-01-31T12:00:00Z)"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(sep=" ", timespec="milliseconds")


@dataclass(frozen=True)
class SubjectSpine:
    """Every event of ``subject`` is one spine row at its ``occurred_at`` (e.g. every upvote
    is a positive example). ``entities`` maps an entity type to the payload field holding
    its key (``entity_key`` for the envelope's key); ``labels`` maps output columns to
    payload fields copied into the training set. ``start``/``end`` bound the rows' time."""

    subject: str
    entities: dict[str, str]
    labels: dict[str, str] = field(default_factory=dict)
    start: str | None = None
    end: str | None = None

    def __post_init__(self) -> None:
        if not self.entities:
            raise BadRequest(f"spine subject {self.subject!r}: name at least one entity")
        for bound in ("start", "end"):
            value = getattr(self, bound)
            if value is not None:
                object.__setattr__(self, bound, _utc_time(value, f"spine.{bound}"))
        for etype, path in self.entities.items():
            check_identifier(etype, "entity type")
            check_field_path(path, f"entity {etype} field")
        for name, path in self.labels.items():
            check_identifier(name, "label name")
            check_field_path(path, f"label {name} field")


@dataclass(frozen=True)
class LabelColumn:
    """A label column of the spine with the ClickHouse type it is read as."""

    name: str
    source: str  # JSON key (observations) or payload field path (subject spine)
    type: str  # e.g. Nullable(Int64)


@dataclass(frozen=True)
class ResolvedSpine:
    """A spine with everything SQL generation needs (label types were looked up)."""

    kind: Literal["observations", "subject"]
    source: str  # spine name or subject
    entities: dict[str, str]  # entity type -> field path (subject) / map key (observations)
    labels: tuple[LabelColumn, ...] = ()
    start: str | None = None
    end: str | None = None
    # subject spine: payload paths that events of older versions read other than as
    # stored -> the SQL reading them as the latest version (typed)
    upcast: dict[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [OBSERVATION_ID, OBSERVED_AT, *self.entities, *(lbl.name for lbl in self.labels)]
