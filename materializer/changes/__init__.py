"""Schema changes judged by what is stored and what depends on it.

:class:`ChangeChecks` answers ``POST /v1/subjects/{s}/check`` (and the Confluent
compatibility route with ``verbose=true``): would the candidate be accepted, how many
stored events would not read as it (:mod:`materializer.changes._log`), and which features
read a field it changes or no longer compile against it. It also registers versions for
the registry's routes, refusing a change that breaks a feature unless the subject's owner
forces it (the features are then marked stale). See docs/registry.md.
"""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.client import Client

from materializer.changes._log import DEFAULT_SAMPLE, MAX_SAMPLE, LogCheck, check_log
from materializer.features import FeatureStore
from materializer.features._upcast import plan_reader
from materializer.training import spines_using
from registry import Candidate, Principal, RegisterResult, Registry, SchemaType, SubjectMetadata
from sluicegate.errors import BreaksFeatures, Forbidden
from sluicegate.naming import CLICKHOUSE_DATABASE

__all__ = ["DEFAULT_SAMPLE", "MAX_SAMPLE", "ChangeChecks", "LogCheck"]


class ChangeChecks:
    """Checks of candidate schemas against the log and the feature catalog."""

    def __init__(self, registry: Registry, store: FeatureStore, client: Client) -> None:
        self._registry = registry
        self._store = store
        self._client = client

    def _owner(self, subject: str) -> str | None:
        return self._registry.metadata(subject).owner

    def check(
        self,
        candidate: Candidate,
        *,
        principal: Principal | None,
        sample: int = DEFAULT_SAMPLE,
        log: bool = True,
    ) -> dict[str, Any]:
        """The impact of ``candidate`` on the features, and with ``log`` (owner team or
        admin only: it reads the subject's events) how its stored events read as it."""
        changes, impacts = self._store.impact(candidate)
        out: dict[str, Any] = {
            "impact": {
                "fields": changes.as_dict(),
                "features": [i.as_dict() for i in impacts],
                "breaks": [i.ref for i in impacts if i.breaks],
                "spines": spines_using(
                    self._client, [i.ref for i in impacts], database=CLICKHOUSE_DATABASE
                ),
            }
        }
        if log:
            owner = self._owner(candidate.subject)
            if principal is None or not principal.can_manage(owner):
                raise Forbidden(
                    f"only the owner team of {candidate.subject!r} (or an admin) may check a "
                    "schema against its stored events; ask with log=false for the rest"
                )
            reader = plan_reader(self._registry, candidate.subject, candidate.plan)
            out["log"] = check_log(self._client, candidate, reader, sample=sample).as_dict()
        return out

    def register(
        self,
        subject: str,
        schema: str,
        schema_type: SchemaType,
        *,
        principal: Principal,
        migration: list[dict[str, Any]] | None = None,
        metadata: SubjectMetadata | None = None,
        force: bool = False,
    ) -> RegisterResult:
        """``Registry.register``, refusing (409, naming them) a change that breaks the
        compiled definition of a live feature unless ``force`` comes from the subject's
        owner team or an admin; forced, those features are marked stale with the reason."""
        live = [r for r in self._store.records() if r.spec.get("source") == subject]
        broken: dict[str, str] = {}  # feature ref -> why the candidate breaks it
        if (
            live
            and subject in self._registry.subjects()
            and principal.can_manage(self._owner(subject))  # others: register refuses them
        ):
            candidate = self._registry.candidate(subject, schema, schema_type, migration=migration)
            if candidate.accepted:  # otherwise register refuses it with its own reasons
                _, impacts = self._store.impact(candidate)
                broken = {i.ref: i.breaks for i in impacts if i.breaks}
                if broken and not force:
                    raise BreaksFeatures(
                        f"registering this schema as version {candidate.version} of "
                        f"{subject!r} breaks {len(broken)} feature(s): "
                        + "; ".join(f"{ref}: {why}" for ref, why in broken.items())
                        + ". Change the features first, or force it (the subject's owner "
                        "team: ?force=true) to mark them stale",
                        features=[i.as_dict() for i in impacts if i.breaks],
                    )
        result = self._registry.register(
            subject,
            schema,
            schema_type,
            principal=principal,
            migration=migration,
            metadata=metadata,
        )
        if broken and result.created:
            self._store.mark_stale(
                {
                    ref: f"version {result.version} of {subject}, forced by team "
                    f"{principal.team}, breaks it: {why}"
                    for ref, why in broken.items()
                }
            )
        return result
