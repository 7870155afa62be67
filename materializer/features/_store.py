"""The feature store of `sluicegate serve`: applies definitions (validate, create, backfill),
deletes and rebuilds them, and answers online reads (through ``_online.OnlineReads``).

Exactly-once backfill: the materialized views are created to take only events loaded at or
after ``T0`` (``events.loaded_at``, set by ClickHouse at insert), a moment a few seconds
ahead; once ``T0`` (plus a margin for inserts in flight) has passed on the store's clock,
the backfill inserts the states of every event loaded before ``T0``. Each event is in
exactly one of the two.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from prometheus_client import CollectorRegistry

from materializer.features import sql
from materializer.features._catalog import (
    ACTIVE,
    BACKFILLING,
    DELETED,
    FAILED,
    Catalog,
    FeatureRecord,
    _split_ref,
    current,
    resolve_records,
)
from materializer.features._fields import schema_fields
from materializer.features._impact import (
    FeatureImpact,
    FieldChanges,
    feature_impacts,
    field_changes,
)
from materializer.features._jobs import Job, Jobs
from materializer.features._online import OnlineReads
from materializer.features._upcast import field_reader, plan_reader
from materializer.features.definition import CompiledFeature, FeatureDefinition
from registry import Candidate
from sluicegate.clickhouse import error_message
from sluicegate.errors import (
    BadRequest,
    Forbidden,
    InvalidDefinition,
    NotFound,
    ResourceNotFound,
    SluicegateError,
    StoreUnavailable,
)
from sluicegate.sqlgate import FunctionAllowlist, load_allowlist

__all__ = ["FeatureRead", "FeatureStore"]


class FeatureRead(NamedTuple):
    """An online read: ``{key: {label: value}}``, ``{label: name@version}``, and the
    moment (epoch ms) the values are as of."""

    values: dict[str, dict[str, Any]]
    versions: dict[str, str]
    as_of_ms: int


@dataclass(frozen=True)
class _Planned:
    definition: FeatureDefinition
    action: str  # created | new_version | metadata | unchanged
    version: int
    compiled: CompiledFeature
    schema_version: int | None = None


class FeatureStore:
    """Feature definitions and their ClickHouse objects, on ``client`` (DDL, backfills)
    and ``readers`` (online reads, so a backfill never holds a read up)."""

    def __init__(
        self,
        client: Client,
        readers: Sequence[Client],
        registry: Any,
        *,
        start_delay_ms: int = 2000,
        inflight_margin_ms: int = 1000,
        functions: FunctionAllowlist | None = None,
        metrics: CollectorRegistry | None = None,
    ) -> None:
        """``functions``: the allowlist definitions are checked against (loaded from the
        store when first needed if not given); ``metrics``: where the online reads'
        counters are registered."""
        self._client = client
        self._online = OnlineReads(readers or [client], metrics)
        self._registry = registry
        self._catalog = Catalog(client)
        self._lock = threading.RLock()
        self._functions = functions
        self._compiled: dict[tuple[str, int], CompiledFeature] = {}
        self._start_delay_ms = start_delay_ms
        self._margin_ms = inflight_margin_ms
        self.jobs = Jobs()
        self._records = self._catalog.records()
        self._recover()

    # ------------------------------------------------------------------ helpers

    def _refresh(self) -> None:
        self._records = self._catalog.records()

    def _command(self, statement: str, settings: dict[str, Any] | None = None) -> None:
        try:
            self._client.command(statement, settings=settings)
        except ClickHouseError as exc:
            raise StoreUnavailable(f"feature store: {error_message(exc)}") from exc

    def _now_ms(self) -> int:
        return int(self._client.command(sql.store_now()))  # type: ignore[arg-type]

    def functions(self) -> FunctionAllowlist:
        """The functions definitions may call (the SQL gate's allowlist), loaded once."""
        if self._functions is None:
            self._functions = load_allowlist(self._client)
        return self._functions

    def _recover(self) -> None:
        """After a crash: versions caught mid-backfill are failed and their objects (and
        any object no live version owns, e.g. a rebuild's half-built generation) dropped.
        Entity tables get the current table settings."""
        for rec in self._records:
            if rec.status == BACKFILLING:
                self._catalog.put(replace(rec, status=FAILED))
        self._refresh()
        live = [rec.objects for rec in self._records if rec.status == ACTIVE]
        keep = {view for objs in live for view in objs.views()}
        rows = self._client.query(
            "SELECT name, engine FROM system.tables WHERE database = currentDatabase() "
            "AND name LIKE 'f\\_%' ORDER BY engine = 'MaterializedView' DESC"
        ).result_rows
        for name, engine in rows:
            if name not in keep:
                self._command(sql.drop("VIEW" if engine == "MaterializedView" else "TABLE", name))
        tables = self._client.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() "
            "AND name LIKE 'fs\\_%'"
        ).result_rows
        for (table,) in tables:
            self._command(sql.entity_table_settings(table))
            owners = [objs for objs in live if objs.table == table]
            orphans = [
                c
                for c in self._columns(table)
                if c.startswith("f_") and not any(objs.owns(c) for objs in owners)
            ]
            if orphans:
                self._command(sql.drop_columns(table, orphans))

    def _columns(self, table: str) -> list[str]:
        return [str(r[0]) for r in self._client.query(sql.table_columns(table)).result_rows]

    def compiled(self, rec: FeatureRecord) -> CompiledFeature:
        """The compiled SQL of a stored version (schema as of its creation)."""
        key = (rec.name, rec.version)
        cf = self._compiled.get(key)
        if cf is None:
            defn = rec.definition
            schema_version = rec.spec.get("_schema_version")
            schema = (
                self._registry.version(defn.source, schema_version)
                if schema_version
                else self._registry.latest(defn.source)
            )
            cf = defn.compiled(
                schema, reader=field_reader(self._registry, defn.source, int(schema.version))
            )
            self._compiled[key] = cf
        return cf

    # ------------------------------------------------------------------ validation

    def validate(self, defn: FeatureDefinition, version: int) -> tuple[CompiledFeature, int]:
        """Check ``defn`` against its source's latest schema and the store (functions,
        types): -> (compiled, schema version). Nothing is created."""
        try:
            schema = self._registry.latest(defn.source)
        except NotFound as exc:
            raise InvalidDefinition(
                f"feature {defn.name}: source: subject {defn.source!r} is not registered",
                field="source",
            ) from exc
        try:
            cf = defn.model_copy(update={"version": version}).compiled(
                schema,
                self.functions(),
                field_reader(self._registry, defn.source, int(schema.version)),
            )
        except InvalidDefinition as exc:
            raise InvalidDefinition(f"feature {defn.name}: {exc.message}", **exc.details) from exc
        probe = sql.Objects(defn.name, version, 0, defn.entity.type)
        for statement in (sql.dry_run(cf), sql.state_select([(cf, probe)], "b", "0")):
            try:
                self._client.query(statement)
            except ClickHouseError as exc:
                raise InvalidDefinition(
                    f"feature {defn.name}: ClickHouse refuses the expressions: "
                    f"{error_message(exc)}",
                    field="aggregation",
                ) from exc
        return cf, int(schema.version)

    # ------------------------------------------------------------------ apply

    def apply(
        self, defns: list[FeatureDefinition], *, team: str, admin: bool, dry_run: bool = False
    ) -> dict[str, Any]:
        """Validate every definition, then create the new versions and start one backfill
        job for them. All definitions are checked before anything is created."""
        names = [d.name for d in defns]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise InvalidDefinition(f"feature {sorted(dupes)[0]} is defined twice")
        with self._lock:
            self._refresh()
            plan = [self._plan(d, team=team, admin=admin) for d in defns]
            results = [
                {"name": p.definition.name, "version": p.version, "action": p.action} for p in plan
            ]
            if dry_run:
                return {"results": results, "job": None, "dry_run": True}
            for p in plan:
                if p.action == "metadata":
                    rec = next(
                        r
                        for r in self._records
                        if r.name == p.definition.name and r.version == p.version
                    )
                    spec = {
                        **p.definition.spec(),
                        "_schema_version": rec.spec.get("_schema_version"),
                    }
                    self._catalog.put(
                        replace(rec, spec=spec, owner=p.definition.owner or rec.owner)
                    )
            new = [p for p in plan if p.action in ("created", "new_version")]
            job = self._create(new, team) if new else None
            self._refresh()
        return {"results": results, "job": job.view() if job else None}

    def _plan(self, defn: FeatureDefinition, *, team: str, admin: bool) -> _Planned:
        mine = [r for r in self._records if r.name == defn.name]
        cur = current(mine, defn.name)
        owner = cur.owner if cur else (defn.owner or team)
        if not admin and owner != team:
            raise Forbidden(f"feature {defn.name} is owned by team {owner!r}")
        if defn.owner and not admin and defn.owner != team:
            raise Forbidden(f"feature {defn.name}: team {team!r} cannot give it to {defn.owner!r}")
        if cur is not None and cur.definition.semantics() == defn.semantics():
            same = {k: v for k, v in cur.spec.items() if not k.startswith("_")} == defn.spec()
            return _Planned(
                defn, "unchanged" if same else "metadata", cur.version, self.compiled(cur)
            )
        version = max((r.version for r in mine), default=0) + 1
        cf, schema_version = self.validate(defn, version)
        return _Planned(defn, "new_version" if cur else "created", version, cf, schema_version)

    def _create(self, plan: list[_Planned], team: str) -> Job:
        t0 = self._now_ms() + self._start_delay_ms
        made: list[tuple[FeatureRecord, CompiledFeature]] = []
        try:
            for p in plan:
                now = int(time.time() * 1000)
                rec = FeatureRecord(
                    p.definition.name,
                    p.version,
                    0,
                    {**p.definition.spec(), "_schema_version": p.schema_version},
                    BACKFILLING,
                    p.definition.owner or team,
                    now,
                    now,
                )
                made.append((rec, p.compiled))
                self._create_objects(p.compiled, rec.objects, t0)
                self._catalog.put(rec)
        except SluicegateError:
            for rec, _ in made:
                self._drop_objects(rec.objects)
                self._catalog.put(replace(rec, status=FAILED))
            raise
        refs = [rec.ref for rec, _ in made]
        return self.jobs.start("backfill", refs, lambda job: self._backfill(job, made, t0))

    def _create_objects(self, cf: CompiledFeature, objs: sql.Objects, t0: int) -> None:
        """The feature's columns in its entity type's table (created when first needed),
        typed as ClickHouse infers its states, and its views."""
        self._command(sql.create_entity_table(objs.entity_type))
        try:
            described = self._client.query(sql.describe_states(cf, objs)).result_rows
        except ClickHouseError as exc:
            raise StoreUnavailable(f"feature store: {error_message(exc)}") from exc
        states = [
            (str(r[0]), str(r[1])) for r in described if objs.owns(r[0]) and r[0] != objs.presence
        ]
        self._command(sql.add_columns(objs, states))
        for part in sql.PARTS:
            self._command(sql.create_view(cf, objs, part, t0))

    def _drop_objects(self, objs: sql.Objects) -> None:
        """Views first (nothing writes the columns any more), then the columns."""
        try:
            for view in objs.views():
                self._client.command(sql.drop("VIEW", view))
            columns = [c for c in self._columns(objs.table) if objs.owns(c)]
            if columns:
                self._client.command(sql.drop_columns(objs.table, columns))
        except ClickHouseError:
            pass  # best effort: recovery at the next start drops leftovers

    def _fill(self, job: Job, items: list[tuple[CompiledFeature, sql.Objects]], t0: int) -> None:
        """Backfill ``items`` from the events loaded before ``t0``, one month partition at a
        time: per month, one INSERT per part and group of features writing the same rows."""
        job.split_ms = t0
        job.progress(0, 0, "waiting for the views to take over")
        while self._now_ms() < t0 + self._margin_ms:
            time.sleep(0.05)
        groups: dict[tuple[str, tuple[str, ...]], list[tuple[CompiledFeature, sql.Objects]]] = {}
        for cf, objs in items:
            for part in sql.PARTS:
                groups.setdefault((part, sql.fill_group(cf, part)), []).append((cf, objs))
        work = []  # (subject, month, feature-events: the month's events x its features)
        for subject in sorted({cf.subject for cf, _ in items}):
            months = self._client.query(sql.backfill_months(subject, t0)).result_rows
            count = sum(1 for cf, _ in items if cf.subject == subject)
            work += [(subject, int(m), int(n) * count) for m, n in months]
        total = sum(n for *_, n in work)
        done = 0
        job.progress(0, total, "backfilling")
        for subject, month, n in work:
            for (part, key), features in groups.items():
                if key[0] == subject:
                    self._command(
                        sql.backfill_insert(features, part, t0, month),
                        settings={"insert_deduplicate": 0},
                    )
            done += n
            job.progress(done, total, "backfilling")
        job.progress(done, total, "merging")
        for table in sorted({objs.table for _, objs in items}):
            self._command(sql.optimize(table))

    def _backfill(
        self, job: Job, made: list[tuple[FeatureRecord, CompiledFeature]], t0: int
    ) -> None:
        try:
            self._fill(job, [(cf, rec.objects) for rec, cf in made], t0)
        except Exception:
            with self._lock:
                for rec, _ in made:
                    self._drop_objects(rec.objects)
                    self._catalog.put(replace(rec, status=FAILED))
                self._refresh()
            raise
        with self._lock:
            for rec, _ in made:
                self._catalog.put(replace(rec, status=ACTIVE))
            self._refresh()

    # ------------------------------------------------------------------ delete / rebuild

    def delete(self, ref: str, *, team: str, admin: bool) -> list[str]:
        """Delete one version (``name@v``) or every version of a feature."""
        name, version = _split_ref(ref)
        with self._lock:
            self._refresh()
            recs = [
                r
                for r in self._records
                if r.name == name
                and r.status == ACTIVE
                and (version is None or r.version == version)
            ]
            if not recs:
                raise ResourceNotFound(f"feature {ref!r} not found", feature=ref)
            for rec in recs:
                if not admin and rec.owner != team:
                    raise Forbidden(f"feature {rec.ref} is owned by team {rec.owner!r}")
            for rec in recs:
                self._catalog.put(replace(rec, status=DELETED))
                self._drop_objects(rec.objects)
                self._compiled.pop((rec.name, rec.version), None)
            self._refresh()
        return [r.ref for r in recs]

    def rebuild(self, refs: list[str] | None = None) -> Job:
        """Rebuild feature tables from `events` into a new generation; the current one
        serves until the new one is complete, then is dropped."""
        with self._lock:
            self._refresh()
            recs = (
                resolve_records(self._records, refs)
                if refs
                else [r for r in self._records if r.status == ACTIVE]
            )
            t0 = self._now_ms() + self._start_delay_ms
            fresh = [replace(r, generation=r.generation + 1) for r in recs]
            try:
                for rec in fresh:
                    self._create_objects(self.compiled(rec), rec.objects, t0)
            except SluicegateError:
                for rec in fresh:
                    self._drop_objects(rec.objects)
                raise

        def work(job: Job) -> None:
            try:
                self._fill(job, [(self.compiled(r), r.objects) for r in fresh], t0)
            except Exception:
                for rec in fresh:
                    self._drop_objects(rec.objects)
                raise
            with self._lock:
                for old, new in zip(recs, fresh, strict=True):
                    self._catalog.put(new)
                    self._drop_objects(old.objects)
                self._refresh()

        return self.jobs.start("rebuild", [r.ref for r in recs], work)

    # ------------------------------------------------------------------ reads

    def records(self) -> list[FeatureRecord]:
        return list(self._records)

    def read(
        self,
        entity_type: str,
        keys: Sequence[str],
        names: Sequence[str] | None = None,
        *,
        now_ms: int | None = None,
    ) -> FeatureRead:
        """Values of ``names`` (default: every feature of ``entity_type``) for ``keys`` as of
        ``now_ms`` (default: now; concurrent reads as of now may share one query, see
        ``_online``), in one query. Missing entities get the training defaults (0 for
        counts, null otherwise)."""
        records = self._records
        if names:
            chosen = list(zip(names, resolve_records(records, list(names)), strict=True))
        else:
            latest = {r.name for r in records if r.status == ACTIVE}
            chosen = [(n, rec) for n in sorted(latest) if (rec := current(records, n)) is not None]
            chosen = [(n, r) for n, r in chosen if r.spec["entity"]["type"] == entity_type]
        for label, rec in chosen:
            if rec.spec["entity"]["type"] != entity_type:
                raise BadRequest(
                    f"feature {label} describes {rec.spec['entity']['type']!r} "
                    f"entities, not {entity_type!r}",
                    feature=label,
                )
        features = [(label, self.compiled(rec), rec.objects) for label, rec in chosen]
        values, as_of = self._online.values(entity_type, keys, features, now_ms)
        return FeatureRead(values, {label: rec.ref for label, rec in chosen}, as_of)

    def freshness_ms(self, rec: FeatureRecord) -> int | None:
        """The occurred_at of the newest event the feature has taken in."""
        return self._online.freshness_ms(rec.objects)

    def freshness_lags(self, subjects: Sequence[str]) -> dict[str, int]:
        """Per subject: the time its most recently loaded event took from acceptance to
        `events` (see :meth:`OnlineReads.freshness_lags`)."""
        return self._online.freshness_lags(subjects)

    def impact(self, candidate: Candidate) -> tuple[FieldChanges, list[FeatureImpact]]:
        """What registering ``candidate`` would change for the features of its subject:
        the fields it changes and every live feature version reading one or broken by it."""
        subject = candidate.subject
        latest = self._registry.latest(subject)
        changes = field_changes(
            schema_fields(str(latest.schema_type), latest.schema),
            schema_fields(str(candidate.schema_type), candidate.schema),
            candidate.migration or [],
        )
        reader = plan_reader(self._registry, subject, candidate.plan)
        impacts = feature_impacts(self._records, subject, changes, self.compiled, candidate, reader)
        return changes, impacts

    def mark_stale(self, reasons: dict[str, str]) -> None:
        """Mark feature versions (``name@version`` -> why) stale: a forced schema change
        broke their definitions. The catalog shows the reason as ``stale``."""
        with self._lock:
            for rec in self._records:
                if rec.ref in reasons:
                    self._catalog.put(replace(rec, spec={**rec.spec, "_stale": reasons[rec.ref]}))
            self._refresh()

    def describe_all(self, recs: Sequence[FeatureRecord]) -> list[dict[str, Any]]:
        """Catalog entries of ``recs`` (their freshness lags found in one query)."""
        lags = self.freshness_lags([r.spec["source"] for r in recs if r.status == ACTIVE])
        return [self.describe(r, lags) for r in recs]

    def describe(self, rec: FeatureRecord, lags: dict[str, int] | None = None) -> dict[str, Any]:
        """A catalog entry (``lags``: :meth:`freshness_lags` of its source, if known)."""
        spec = {k: v for k, v in rec.spec.items() if not k.startswith("_")}
        entry: dict[str, Any] = {
            "name": rec.name,
            "version": rec.version,
            "status": rec.status,
            "owner": rec.owner,
            "description": spec.get("description", ""),
            "tags": spec.get("tags", []),
            "entity": spec["entity"],
            "source": spec["source"],
            "definition": spec,
            "created_at_ms": rec.created_ms,
            "schema_version": rec.spec.get("_schema_version"),
        }
        if rec.spec.get("_stale"):
            entry["stale"] = rec.spec["_stale"]
        try:
            cf = self.compiled(rec)
            entry["reads"] = {"subjects": [cf.subject], "fields": list(cf.fields)}
            entry["kind"] = cf.kind.value
            entry["default"] = 0 if cf.default_sql == "0" else None
            entry["window_ms"] = cf.window_ms
            entry["sql"] = {
                "entity_expr": cf.entity_expr,
                "value_agg": cf.value_agg,
                "filter_expr": cf.filter_expr,
            }
        except SluicegateError as exc:
            entry["reads"] = {"subjects": [spec["source"]], "fields": []}
            entry["error"] = exc.message
        if rec.status == ACTIVE:
            entry["freshness_ms"] = self.freshness_ms(rec)
            if lags is None:
                lags = self.freshness_lags([rec.spec["source"]])
            entry["freshness_lag_ms"] = lags.get(rec.spec["source"])
        return entry

    def close(self) -> None:
        self.jobs.wait(timeout=5)
