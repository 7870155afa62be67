"""The registration rules that need no storage: whether a new schema may follow the
subject's versions (compatibility, or a verified migration) and which metadata the
subject ends up with."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from registry import _compat, _migration
from registry._model import field_paths
from registry._schemas import ParsedSchema
from registry._types import Compatibility, Principal, SubjectMetadata
from sluicegate.errors import Forbidden, IncompatibleSchema, InvalidMigration, Unprocessable


def require_manager(subject: str, owner: str | None, principal: Principal, doing: str = "") -> None:
    """Refuse (403) a principal that may not manage ``subject`` (owned by ``owner``);
    ``doing`` says what it may not do."""
    if principal.can_manage(owner):
        return
    tail = f"; team '{principal.team}' may not {doing}" if doing else ""
    raise Forbidden(f"subject '{subject}' is owned by team '{owner}'{tail}")


def judge(
    subject: str,
    parsed: ParsedSchema,
    previous: list[tuple[int, ParsedSchema]],
    level: Compatibility,
    migration: list[dict[str, Any]] | None,
) -> tuple[list[str], bool]:
    """``(messages, migrated)`` for registering ``parsed`` after ``previous`` (live
    versions, oldest first). Raises IncompatibleSchema listing every failing path and rule,
    unless ``migration`` turns the last version's events into valid new ones (then
    ``migrated`` is True and the messages say why); InvalidMigration when it does not."""
    messages = _compat.check(parsed, previous, level) if previous else []
    if migration is None:
        if messages:
            raise IncompatibleSchema(
                f"Schema being registered is incompatible with an earlier schema for "
                f'subject "{subject}" ({level.value}): ' + "; ".join(messages),
                messages=messages,
            )
        return [], False
    if not previous:
        raise InvalidMigration(
            f"a migration needs a previous version to migrate from; subject '{subject}' has none"
        )
    last_version, last = previous[-1]
    _migration.verify(_migration.validate(migration), last, parsed, from_version=last_version)
    if not messages:
        return [], False
    return [
        f"accepted because the migration from version {last_version} makes old events valid; "
        f"without it the change is refused by {level.value}:",
        *messages,
    ], True


def registration_metadata(
    subject: str,
    given: SubjectMetadata | None,
    current: SubjectMetadata | None,
    principal: Principal,
) -> SubjectMetadata:
    """The subject's metadata after a registration (the caller may manage the subject):
    the registrant's team owns a new subject; only admin may name another team as owner."""
    owner = current.owner if current else None
    default_owner = owner or principal.team
    if given is not None:
        check_owner_change(given.owner, owner, principal)
    if given is None:
        return (
            replace(current, owner=default_owner)
            if current
            else SubjectMetadata(subject, owner=default_owner)
        )
    return replace(given, subject=subject, owner=given.owner or default_owner)


def check_owner_change(wanted: str | None, current: str | None, principal: Principal) -> None:
    """Only admin gives a subject to another team: a team may name itself (or keep the
    current owner), never a team it does not belong to."""
    if wanted is None or principal.admin or wanted in (principal.team, current):
        return
    raise Forbidden(
        f"metadata.owner: team '{principal.team}' may not name team '{wanted}' as owner; "
        "only admin assigns a subject to another team"
    )


def check_metadata(meta: SubjectMetadata, parsed: ParsedSchema | None) -> None:
    """Entity-key and event-time fields must be fields of the schema."""
    if parsed is None:
        return
    paths = field_paths(parsed.schema_type, parsed.document)
    for name in [*meta.entity_key, *([meta.event_time] if meta.event_time else [])]:
        if name not in paths:
            role = "event_time" if name == meta.event_time else "entity_key"
            raise Unprocessable(f"metadata.{role}: {name!r} is not a field of the subject's schema")
