"""Request bodies of the registry API (pydantic models, also used for the OpenAPI docs)
and their translation into Registry calls."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from registry._registry import Registry
from registry._schemas import schema_type_of
from registry._types import RegisteredSchema, SchemaType, SubjectMetadata
from sluicegate.errors import (
    InvalidMigration,
    InvalidSchema,
    SubjectNotFound,
    Unprocessable,
)

MIGRATION_RULE_TYPE = "SLUICEGATE"


class SchemaReference(BaseModel):
    """Confluent schema reference (accepted in the shape; references are not supported)."""

    name: str
    subject: str
    version: int


class ConfluentMetadata(BaseModel):
    """Confluent's ``metadata``; Sluicegate reads ``properties``: owner, entity_key
    (comma-separated or a JSON list), event_time, description, tags (comma-separated)."""

    model_config = ConfigDict(extra="allow")
    properties: dict[str, str] = Field(default_factory=dict)


class Rule(BaseModel):
    """One Confluent rule. Sluicegate runs migration rules of type ``SLUICEGATE`` whose
    ``expr`` (or ``params.ops``) is the JSON list of migration operations."""

    model_config = ConfigDict(extra="allow")
    name: str = ""
    kind: str = "TRANSFORM"
    mode: str = "UPGRADE"
    type: str = MIGRATION_RULE_TYPE
    expr: str | None = None
    params: dict[str, str] = Field(default_factory=dict)


class RuleSet(BaseModel):
    """Confluent's ``ruleSet``."""

    model_config = ConfigDict(extra="allow")
    migrationRules: list[Rule] = Field(default_factory=list)  # Confluent's field name
    domainRules: list[Rule] = Field(default_factory=list)  # Confluent's field name


class RegisterBody(BaseModel):
    """A schema as Confluent clients post it, plus Sluicegate's optional ``migration``."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    schema_text: str = Field(alias="schema")
    schemaType: str | None = None  # Confluent's field name
    references: list[SchemaReference] = Field(default_factory=list)
    metadata: ConfluentMetadata | None = None
    ruleSet: RuleSet | None = None  # Confluent's field name
    migration: list[dict[str, Any]] | None = None


class MetadataBody(BaseModel):
    """Subject metadata; fields left out keep their current values."""

    model_config = ConfigDict(extra="forbid")
    owner: str | None = None
    entity_key: list[str] | None = None
    event_time: str | None = None
    description: str | None = None
    tags: list[str] | None = None


class V1RegisterBody(BaseModel):
    """Sluicegate's registration: the schema as text or as a JSON document."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    schema_doc: str | dict[str, Any] | list[Any] = Field(alias="schema")
    schemaType: str | None = None  # same spelling as the Confluent API
    migration: list[dict[str, Any]] | None = None
    metadata: MetadataBody | None = None


class UpcastBody(BaseModel):
    """An event of ``version`` to bring to the latest version."""

    model_config = ConfigDict(extra="forbid")
    version: int
    payload: dict[str, Any]


class TokenBody(BaseModel):
    """A token to create."""

    model_config = ConfigDict(extra="forbid")
    team: str = Field(min_length=1, max_length=255)
    subjects: str | None = None
    admin: bool = False


@dataclass(frozen=True)
class Registration:
    schema: str
    schema_type: SchemaType
    migration: list[dict[str, Any]] | None
    metadata: SubjectMetadata | None


def _invalid(exc: ValidationError, cls: type[Exception] = Unprocessable) -> Exception:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return cls(f"body.{where}: {first['msg']}")


def _validate(model: type[Any], data: Any, cls: type[Exception] = Unprocessable) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, cls) from exc


def parse_register(data: Any) -> RegisterBody:
    """The Confluent register/lookup body; 42201 when it is not one."""
    body: RegisterBody = _validate(RegisterBody, data, InvalidSchema)
    if body.references:
        raise InvalidSchema("schema references are not supported by this registry")
    return body


def _split(value: str) -> list[str]:
    text = value.strip()
    if text.startswith("["):
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise Unprocessable(f"metadata.properties: invalid JSON list {value!r}") from exc
        return [str(i) for i in items]
    return [p.strip() for p in text.split(",") if p.strip()]


def _current(registry: Registry, subject: str) -> SubjectMetadata:
    try:
        return registry.metadata(subject)
    except SubjectNotFound:
        return SubjectMetadata(subject)


def _metadata_from_properties(
    props: dict[str, str], base: SubjectMetadata
) -> SubjectMetadata | None:
    known = {"owner", "entity_key", "event_time", "description", "tags"}
    if not known & props.keys():
        return None
    meta = base
    if "owner" in props:
        meta = replace(meta, owner=props["owner"] or None)
    if "entity_key" in props:
        meta = replace(meta, entity_key=_split(props["entity_key"]))
    if "event_time" in props:
        meta = replace(meta, event_time=props["event_time"] or None)
    if "description" in props:
        meta = replace(meta, description=props["description"])
    if "tags" in props:
        meta = replace(meta, tags=_split(props["tags"]))
    return meta


def _migration_from_rules(rule_set: RuleSet | None) -> list[dict[str, Any]] | None:
    if rule_set is None or not rule_set.migrationRules:
        return None
    ops: list[dict[str, Any]] = []
    for i, rule in enumerate(rule_set.migrationRules):
        if rule.type.upper() != MIGRATION_RULE_TYPE:
            raise InvalidMigration(
                f"ruleSet.migrationRules[{i}].type: {rule.type!r} is not supported; use "
                f"{MIGRATION_RULE_TYPE} with the operations as JSON in expr"
            )
        if rule.mode.upper() not in ("UPGRADE", "UPDOWN"):
            continue
        text = rule.expr or rule.params.get("ops")
        if not text:
            raise InvalidMigration(f"ruleSet.migrationRules[{i}].expr: the operations are missing")
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidMigration(
                f"ruleSet.migrationRules[{i}].expr: not a JSON list of operations: {exc}"
            ) from exc
        ops.extend(parsed if isinstance(parsed, list) else [parsed])
    return ops or None


def to_registration(body: RegisterBody, subject: str, registry: Registry) -> Registration:
    """What a Confluent register call asks the Registry to do."""
    schema_type = schema_type_of(body.schemaType)
    metadata = None
    if body.metadata is not None:
        metadata = _metadata_from_properties(body.metadata.properties, _current(registry, subject))
    migration = (
        body.migration if body.migration is not None else _migration_from_rules(body.ruleSet)
    )
    return Registration(body.schema_text, schema_type, migration, metadata)


def parse_metadata(data: Any, base: SubjectMetadata) -> SubjectMetadata:
    """A PUT metadata body applied over ``base``."""
    body: MetadataBody = _validate(MetadataBody, data)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("description") is None:
        changes.pop("description", None)
    for key in ("entity_key", "tags"):
        if key in changes and changes[key] is None:
            changes[key] = []
    return replace(base, **changes)


def parse_v1_register(data: Any, subject: str, registry: Registry) -> Registration:
    """A /v1 registration body."""
    body: V1RegisterBody = _validate(V1RegisterBody, data, InvalidSchema)
    schema_type = schema_type_of(body.schemaType)
    text = (
        body.schema_doc
        if isinstance(body.schema_doc, str)
        else orjson.dumps(body.schema_doc).decode()
    )
    metadata = None
    if body.metadata is not None:
        metadata = parse_metadata(
            body.metadata.model_dump(exclude_unset=True), _current(registry, subject)
        )
    return Registration(text, schema_type, body.migration, metadata)


def parse_upcast(data: Any) -> UpcastBody:
    """An upcast body."""
    return _validate(UpcastBody, data)  # type: ignore[no-any-return]


def parse_token(data: Any) -> TokenBody:
    """A token creation body."""
    return _validate(TokenBody, data)  # type: ignore[no-any-return]


def metadata_body(meta: SubjectMetadata) -> dict[str, Any]:
    """Subject metadata as JSON."""
    return {
        "subject": meta.subject,
        "owner": meta.owner,
        "entity_key": meta.entity_key,
        "event_time": meta.event_time,
        "description": meta.description,
        "tags": meta.tags,
    }


def subject_summary(registry: Registry, subject: str, *, deleted: bool) -> dict[str, Any]:
    """The /v1 listing entry of one subject."""
    latest = registry.latest(subject, deleted=deleted)
    return {
        **metadata_body(registry.metadata(subject)),
        "latest_version": latest.version,
        "schema_id": latest.id,
        "schema_type": latest.schema_type.value,
        "versions": registry.versions(subject, deleted=deleted),
        "compatibility": registry.compatibility(subject).value,
    }


def schema_by_id_body(rs: RegisteredSchema) -> bytes:
    """The precomputed body of GET /schemas/ids/{id}."""
    return orjson.dumps(
        {
            "schema": rs.schema,
            "schemaType": rs.schema_type.value,
            "references": [],
        }
    )
