"""A candidate schema checked against the events its subject already stored.

Two passes, each stated in the answer:

- every stored event, in ClickHouse: each field of the candidate is read as readers would
  read it once the candidate is registered (the read plan, migrations included); a
  required field that is missing or null, and a stored value of the wrong JSON type, are
  counted with the first event ids;
- a sample of stored events (spread over the log by a hash of their ids), in Python: each
  one upcast with the registry's own migrations and validated against the candidate with
  every rule of the schema (formats, enums, bounds, patterns, extra properties, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from sqlglot import exp

from materializer.features._fields import FieldType, schema_fields
from materializer.features._upcast import FieldReader
from registry import Candidate
from sluicegate.clickhouse import error_message
from sluicegate.errors import InvalidDefinition, InvalidMigration, StoreUnavailable
from sluicegate.sqlgate import DIALECT

__all__ = ["DEFAULT_SAMPLE", "MAX_FIELDS", "MAX_SAMPLE", "LogCheck", "RuleCount", "check_log"]

DEFAULT_SAMPLE = 1000
MAX_SAMPLE = 100_000
MAX_FIELDS = 256  # fields checked over every event (the rest: in the sample)
FIRST_IDS = 5

# The JSON types (ClickHouse's JSONType) a stored value of each read type may have.
_JSON_TYPES = {
    "Int64": ("Int64", "UInt64"),
    "Float64": ("Int64", "UInt64", "Double"),
    "Bool": ("Bool",),
    "String": ("String",),
}
_ARTICLE = {"integer": "an integer", "array": "an array", "any": "a value"}


@dataclass(frozen=True)
class RuleCount:
    """How many checked events break one rule at one path, and the first of them."""

    path: str
    rule: str
    message: str
    events: int
    first_ids: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rule": self.rule,
            "message": self.message,
            "events": self.events,
            "first_ids": self.first_ids,
        }


@dataclass(frozen=True)
class LogCheck:
    """The outcome of :func:`check_log`."""

    subject: str
    version: int
    events: int  # stored events of the subject, all checked in ClickHouse
    failing: int  # of those, how many break a rule checked over all of them
    violations: list[RuleCount]
    fields_checked: int
    sample: int  # events validated in full
    sample_failing: int
    sample_violations: list[RuleCount] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failing and not self.sample_failing

    def summary(self) -> str:
        """One sentence a person reads first."""
        head = f"version {self.version} of {self.subject}"
        if not self.events:
            return f"no stored events of {self.subject}: nothing to check"
        parts = []
        if self.failing:
            worst = self.violations[0]
            parts.append(
                f"{self.failing:,} of {self.events:,} stored events would not read as {head}: "
                f"{worst.message} (first ids: {', '.join(worst.first_ids)})"
            )
        else:
            parts.append(
                f"all {self.events:,} stored events read as {head} "
                f"(required fields and types of {self.fields_checked} fields)"
            )
        if self.sample:
            if self.sample_failing:
                worst = self.sample_violations[0]
                parts.append(
                    f"{self.sample_failing:,} of a sample of {self.sample:,} events validated "
                    f"in full fail: {worst.message} (first ids: {', '.join(worst.first_ids)})"
                )
            else:
                parts.append(f"a sample of {self.sample:,} events validated in full: all valid")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "version": self.version,
            "events": self.events,
            "failing": self.failing,
            "checked": {
                "all_events": ["required", "type"],
                "fields": self.fields_checked,
                "sample": self.sample,
                "sample_rules": "every rule of the schema, after the migrations",
            },
            "violations": [v.as_dict() for v in self.violations],
            "sample": {
                "events": self.sample,
                "failing": self.sample_failing,
                "violations": [v.as_dict() for v in self.sample_violations],
            },
        }


def _quote(text: str) -> str:
    return exp.Literal.string(text).sql(dialect=DIALECT)


def _rules(fields: dict[str, FieldType], reader: FieldReader) -> list[tuple[str, str, str, str]]:
    """(path, rule, message, SQL condition true for a breaking event) per checked rule."""
    out = []
    for path, ftype in list(fields.items())[:MAX_FIELDS]:
        json_path = "$." + path
        kind = _ARTICLE.get(ftype.kind, f"a {ftype.kind}")
        allowed = _JSON_TYPES.get(ftype.base) if ftype.kind != "any" else None
        stored_type = reader.json_type_sql(path)
        wrong_type = None
        if allowed is not None:
            wrong_type = f"({stored_type} NOT IN ('', 'Null', {', '.join(map(_quote, allowed))}))"
            if ftype.base == "Int64":  # 2.0 is an integer to JSON Schema
                whole = f"JSONExtractFloat(payload, {_quote_path(path)})"
                integral = f"({stored_type} = 'Double' AND {whole} = floor({whole}))"
                wrong_type = f"({wrong_type} AND NOT {integral})"
            out.append((json_path, "type", f"{json_path} is not {kind}", wrong_type))
        if not ftype.nullable:
            if ftype.base.startswith(("Array(", "Map(")) or ftype.kind == "any":
                missing = f"({stored_type} = 'Null')"
            else:
                try:
                    value = reader.sql(path, FieldType(ftype.base, True, ftype.kind), "schema")
                except InvalidDefinition:  # a migration ClickHouse cannot compute: sampled
                    continue
                missing = f"isNull({value})"
                if wrong_type is not None:
                    missing = f"({missing} AND NOT {wrong_type})"
            out.append((json_path, "required", f"{json_path} is missing or null", missing))
    return out


def _quote_path(path: str) -> str:
    return ", ".join(_quote(p) for p in path.split("."))


def _all_events(
    client: Client, subject: str, rules: list[tuple[str, str, str, str]]
) -> tuple[int, int, list[RuleCount]]:
    conditions = [cond for _, _, _, cond in rules]
    any_bad = " OR ".join(conditions) if conditions else "false"
    columns = ["count()", f"countIf({any_bad})"]
    for cond in conditions:
        columns += [f"countIf({cond})", f"groupArrayIf({FIRST_IDS})(event_id, {cond})"]
    query = f"SELECT {', '.join(columns)} FROM events WHERE subject = {{subject:String}}"
    row = client.query(query, parameters={"subject": subject}).result_rows[0]
    counts = [
        RuleCount(path, rule, message, int(row[2 + 2 * i]), [str(x) for x in row[3 + 2 * i]])
        for i, (path, rule, message, _) in enumerate(rules)
    ]
    found = sorted((c for c in counts if c.events), key=lambda c: (-c.events, c.path))
    return int(row[0]), int(row[1]), found


def _sample(client: Client, candidate: Candidate, size: int) -> tuple[int, int, list[RuleCount]]:
    rows = client.query(
        "SELECT event_id, payload_version, payload FROM events WHERE subject = {subject:String} "
        "ORDER BY cityHash64(event_id) LIMIT {size:UInt32}",
        parameters={"subject": candidate.subject, "size": size},
    ).result_rows
    found: dict[tuple[str, str], tuple[str, list[str], int]] = {}
    failing = 0
    for event_id, stored_version, text in rows:
        problems = _problems(candidate, int(stored_version), str(text))
        if problems:
            failing += 1
        for path, rule, message in problems:
            message0, ids, n = found.get((path, rule), (message, [], 0))
            if len(ids) < FIRST_IDS:
                ids.append(str(event_id))
            found[(path, rule)] = (message0, ids, n + 1)
    counts = [
        RuleCount(path, rule, message, n, ids) for (path, rule), (message, ids, n) in found.items()
    ]
    return len(rows), failing, sorted(counts, key=lambda c: (-c.events, c.path))


def _problems(
    candidate: Candidate, stored_version: int, text: str
) -> Iterable[tuple[str, str, str]]:
    try:
        payload = orjson.loads(text)
        payload = candidate.upcast(stored_version, payload)
    except InvalidMigration as exc:
        return [("$", "migration", exc.message)]
    except Exception as exc:  # a stored payload the migrations cannot read
        return [("$", "migration", f"{type(exc).__name__}: {exc}")]
    seen: dict[tuple[str, str], str] = {}
    for v in candidate.violations(payload):
        seen.setdefault((v.path, v.rule), f"{v.path}: {v.message}")
    return [(path, rule, message) for (path, rule), message in seen.items()]


def check_log(
    client: Client, candidate: Candidate, reader: FieldReader, *, sample: int = DEFAULT_SAMPLE
) -> LogCheck:
    """Check ``candidate`` against every stored event of its subject (``reader``: the
    candidate's field reader, see ``plan_reader``) and validate ``sample`` of them in full."""
    fields = schema_fields(str(candidate.schema_type), candidate.schema)
    rules = _rules(fields, reader)
    try:
        events, failing, violations = _all_events(client, candidate.subject, rules)
        checked, sample_failing, sample_violations = (
            _sample(client, candidate, sample) if sample and events else (0, 0, [])
        )
    except ClickHouseError as exc:
        raise StoreUnavailable(f"ClickHouse: {error_message(exc)}") from exc
    return LogCheck(
        subject=candidate.subject,
        version=candidate.version,
        events=events,
        failing=failing,
        violations=violations,
        fields_checked=min(len(fields), MAX_FIELDS),
        sample=checked,
        sample_failing=sample_failing,
        sample_violations=sample_violations,
    )
