"""A schema not registered yet, as the next version of its subject: the read plan and the
upcasters it would have, and a validator for its events. Checks that judge a change by the
events already stored (``POST /v1/subjects/{s}/check``) read the log through it exactly as
readers would once it is registered."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fastavro.validation import ValidationError
from fastavro.validation import validate as avro_validate
from jsonschema import Draft7Validator, validators

from registry import _migration
from registry._model import SubjectState, VersionState
from registry._readplan import ReadPlan, read_plan
from registry._schemas import ParsedSchema
from registry._types import SchemaType
from registry._upcast import build_steps

__all__ = ["CANDIDATE_SCHEMA_ID", "Candidate", "Violation", "candidate_of"]

# The schema id the candidate has in its own plan: no registered schema has it.
CANDIDATE_SCHEMA_ID = -1


@dataclass(frozen=True)
class Violation:
    """Why one event does not read as the candidate: a JSON path, the rule, a message."""

    path: str
    rule: str
    message: str


@dataclass(frozen=True)
class Candidate:
    """``schema`` as version ``version`` of ``subject`` (with ``migration`` from the
    subject's latest live version ``latest``, if any)."""

    subject: str
    version: int
    latest: int
    parsed: ParsedSchema
    migration: list[dict[str, Any]] | None
    plan: ReadPlan
    accepted: bool  # would registering it be accepted (compatibility level, migration)
    messages: list[str]  # why not, or why only thanks to the migration
    _state: SubjectState = field(repr=False)
    _schemas: Mapping[int, ParsedSchema] = field(repr=False)
    _steps: dict[int, list[Callable[[dict[str, Any]], dict[str, Any]]]] = field(
        default_factory=dict, repr=False
    )

    @property
    def schema_type(self) -> SchemaType:
        return self.parsed.schema_type

    @property
    def schema(self) -> str:
        """The canonical schema text (what ``RegisteredSchema.schema`` holds)."""
        return self.parsed.canonical

    def upcast(self, stored_version: int, payload: dict[str, Any]) -> dict[str, Any]:
        """An event stored under ``stored_version`` read as the candidate: every later
        version's migration (or Avro resolution) and the candidate's own. Raises
        InvalidMigration when a step fails."""
        steps = self._steps.get(stored_version)
        if steps is None:
            steps = build_steps(self._state, self._schemas, stored_version, self.version)
            self._steps[stored_version] = steps
        for run in steps:
            payload = run(payload)
        return payload

    def violations(self, payload: Any) -> list[Violation]:
        """Every rule of the candidate ``payload`` breaks (empty when it is valid)."""
        if self.parsed.schema_type is SchemaType.AVRO:
            try:
                avro_validate(payload, self.parsed.parsed, raise_errors=True)
            except ValidationError as exc:
                return [Violation("$", "avro", str(e)) for e in exc.errors] or [
                    Violation("$", "avro", str(exc))
                ]
            return []
        return [
            Violation(err.json_path, str(err.validator), err.message)
            for err in _json_validator(self.parsed).iter_errors(payload)
        ]


_JSON_VALIDATORS: dict[str, Any] = {}


def _json_validator(parsed: ParsedSchema) -> Any:
    found = _JSON_VALIDATORS.get(parsed.canonical)
    if found is None:
        cls = validators.validator_for(parsed.document, default=Draft7Validator)
        found = _JSON_VALIDATORS[parsed.canonical] = cls(parsed.document)
        if len(_JSON_VALIDATORS) > 256:
            _JSON_VALIDATORS.pop(next(iter(_JSON_VALIDATORS)))
    return found


def candidate_of(
    sub: SubjectState,
    schemas: Mapping[int, ParsedSchema],
    parsed: ParsedSchema,
    migration: list[dict[str, Any]] | None,
    accepted: bool,
    messages: list[str],
) -> Candidate:
    """``parsed`` as the version after ``sub``'s newest (``schemas``: id -> parsed schema
    of every registered schema the subject's versions name)."""
    versions = sub.all()
    latest = sub.live()[-1].version if sub.live() else 0
    number = (versions[-1].version if versions else 0) + 1
    ops = _migration.validate(migration) if migration is not None else None
    state = replace(
        sub,
        versions={
            **sub.versions,
            number: VersionState(number, CANDIDATE_SCHEMA_ID, False, ops),
        },
    )
    own = {**schemas, CANDIDATE_SCHEMA_ID: parsed}
    return Candidate(
        subject=sub.name,
        version=number,
        latest=latest,
        parsed=parsed,
        migration=ops,
        plan=read_plan(state, own, number),
        accepted=accepted,
        messages=messages,
        _state=state,
        _schemas=own,
    )
