"""How each field of a subject's latest version is read from an event stored under an
older version: the migration chain, turned around into one symbolic expression per field
and stored version.

Events stay in the log as they were written (or as they were upcast when loaded); readers
that want every event as the latest version compile these expressions into their query
language (the materializer into ClickHouse SQL) instead of rewriting stored events. The
expressions follow :mod:`registry._migration` op by op, so they mean what
``POST /v1/subjects/{s}/upcast`` does.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from registry._model import SubjectState, avro_record_fields, field_paths
from registry._schemas import ParsedSchema
from registry._types import SchemaType

__all__ = [
    "Absent",
    "Cast",
    "Derived",
    "Literal",
    "OrElse",
    "ReadPlan",
    "Source",
    "Stored",
    "present",
    "read_plan",
]


@dataclass(frozen=True)
class Stored:
    """The value at ``path`` of the stored payload (absent when the payload lacks it)."""

    path: tuple[str, ...]


@dataclass(frozen=True)
class Literal:
    """A constant (a migration's default)."""

    value: Any


@dataclass(frozen=True)
class Absent:
    """No value: the field was dropped, or moved away."""


@dataclass(frozen=True)
class OrElse:
    """``first`` when it is present (see :func:`present`), otherwise ``default``."""

    first: Source
    default: Source


@dataclass(frozen=True)
class Cast:
    """``inner`` converted to ``to`` (string, int, long, float, double, boolean) when it is
    present and not null."""

    to: str
    inner: Source


@dataclass(frozen=True)
class Derived:
    """A migration's ``derive`` expression, its names bound to sources."""

    expr: str
    names: tuple[tuple[str, Source], ...]


Source = Stored | Literal | Absent | OrElse | Cast | Derived


@dataclass(frozen=True)
class ReadPlan:
    """For each stored version older than ``latest`` whose events do not read as the latest
    version unchanged: latest field path -> its source in a payload of that version.
    ``fields[v]`` lists the field paths the schema of version ``v`` has."""

    latest: int
    sources: dict[int, dict[str, Source]] = field(default_factory=dict)
    fields: dict[int, frozenset[str]] = field(default_factory=dict)

    def of(self, path: str) -> dict[int, Source]:
        """The versions whose events read ``path`` other than straight, with the source."""
        return {v: s[path] for v, s in sorted(self.sources.items()) if path in s}


def _names(expr: str) -> list[str]:
    tree = ast.parse(expr, mode="eval")
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and id(node) not in calls and node.id not in out:
            out.append(node.id)
    return out


def _through(op: Mapping[str, Any], q: tuple[str, ...]) -> Source:
    """The source, in the payload before ``op``, of path ``q`` after it."""
    kind = op["op"]
    if kind in ("rename", "move"):
        src, dst = tuple(op["from"].split(".")), tuple(op["to"].split("."))
        if q[: len(dst)] == dst:
            return _or_else(Stored(src + q[len(dst) :]), Stored(q))
        if q[: len(src)] == src:
            return Absent()
        return Stored(q)
    target = tuple(op["field"].split("."))
    if q != target:
        return Absent() if kind == "drop" and q[: len(target)] == target else Stored(q)
    if kind == "add":
        return OrElse(Stored(q), Literal(op["default"]))
    if kind == "drop":
        return Absent()
    if kind == "cast":
        return Cast(op["to"], Stored(q))
    names = tuple((n, Stored((n,))) for n in _names(op["expr"]))
    return Derived(op["expr"], names)


def present(source: Source) -> bool | None:
    """Whether ``source`` has a value: True or False when that is known without a
    payload, None when it depends on the stored payload."""
    if isinstance(source, Literal | Derived):
        return True
    if isinstance(source, Absent):
        return False
    if isinstance(source, Cast):
        return present(source.inner)
    if isinstance(source, OrElse):
        first, default = present(source.first), present(source.default)
        return True if first or default else (None if None in (first, default) else False)
    return None


def _or_else(first: Source, default: Source) -> Source:
    known = present(first)
    if known is True:
        return first
    if known is False:
        return default
    return OrElse(first, default)


def _substitute(source: Source, op: Mapping[str, Any]) -> Source:
    """``source`` (over the payload after ``op``) over the payload before it."""
    if isinstance(source, Stored):
        return _through(op, source.path)
    if isinstance(source, OrElse):
        return _or_else(_substitute(source.first, op), _substitute(source.default, op))
    if isinstance(source, Cast):
        return Cast(source.to, _substitute(source.inner, op))
    if isinstance(source, Derived):
        return Derived(source.expr, tuple((n, _substitute(s, op)) for n, s in source.names))
    return source


def _avro_step(writer: ParsedSchema, reader: ParsedSchema) -> list[dict[str, Any]]:
    """Avro schema resolution as migration ops: a reader field the writer lacks takes its
    default; a field found under one of its aliases is moved."""
    ops: list[dict[str, Any]] = []
    written = {f["name"] for f in avro_record_fields(writer.document)}
    for f in avro_record_fields(reader.document):
        if f["name"] in written:
            continue
        alias = next((a for a in f.get("aliases", []) if a in written), None)
        if alias is not None:
            ops.append({"op": "move", "from": alias, "to": f["name"]})
        elif "default" in f:
            ops.append({"op": "add", "field": f["name"], "default": f["default"]})
    return ops


def read_plan(
    sub: SubjectState, parsed: Mapping[int, ParsedSchema], latest_version: int
) -> ReadPlan:
    """The plan of subject ``sub`` up to ``latest_version`` (its latest live version;
    soft-deleted versions in between count: old events may have been written with them).
    ``parsed``: schema id -> parsed schema."""
    versions = [v for v in sub.all() if v.version <= latest_version]
    if not versions:
        return ReadPlan(latest=0)
    latest = versions[-1]
    latest_schema = parsed[latest.schema_id]
    paths = sorted(field_paths(latest_schema.schema_type, latest_schema.document))
    fields = {
        v.version: frozenset(
            field_paths(parsed[v.schema_id].schema_type, parsed[v.schema_id].document)
        )
        for v in versions
    }
    steps: list[list[dict[str, Any]]] = []  # steps[i]: ops from versions[i] to versions[i+1]
    for prev, cur in itertools.pairwise(versions):
        if cur.migration is not None:
            steps.append(list(cur.migration))
        elif parsed[cur.schema_id].schema_type is SchemaType.AVRO:
            steps.append(_avro_step(parsed[prev.schema_id], parsed[cur.schema_id]))
        else:
            steps.append([])
    sources: dict[int, dict[str, Source]] = {}
    current: dict[str, Source] = {p: Stored(tuple(p.split("."))) for p in paths}
    for i in range(len(versions) - 2, -1, -1):
        for op in reversed(steps[i]):
            current = {p: _substitute(s, op) for p, s in current.items()}
        changed = {p: s for p, s in current.items() if s != Stored(tuple(p.split(".")))}
        if changed:
            sources[versions[i].version] = changed
    return ReadPlan(latest=latest.version, sources=sources, fields=fields)
