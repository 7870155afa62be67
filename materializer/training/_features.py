"""Features for a training set come from the stored definitions, compiled exactly as online
serving compiles them: nothing is re-declared here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from clickhouse_connect.driver.client import Client

from materializer.features import load_definitions
from materializer.features._upcast import field_reader
from materializer.features.definition import CompiledFeature, FeatureDefinition
from materializer.training._model import FeatureSpec

__all__ = ["SchemaSource", "feature_specs", "spec_from_compiled"]


class SchemaSource(Protocol):
    """What compiling a definition needs from the registry."""

    def latest(self, subject: str) -> Any: ...

    def version(self, subject: str, version: int, *, deleted: bool = False) -> Any: ...

    def read_plan(self, subject: str, version: int | None = None) -> Any: ...


def spec_from_compiled(compiled: CompiledFeature, *, aggregation: str = "") -> FeatureSpec:
    """A :class:`FeatureSpec` from a compiled feature definition."""
    return FeatureSpec(
        name=compiled.name,
        version=int(compiled.version),
        entity_type=compiled.entity_type,
        subject=compiled.subject,
        entity_expr=compiled.entity_expr,
        value_agg=compiled.value_agg,
        filter_expr=compiled.filter_expr or "1",
        window_ms=compiled.window_ms,
        default_sql=compiled.default_sql,
        aggregation=aggregation,
    )


def _written(defn: FeatureDefinition) -> str:
    """The aggregation as the definition file wrote it (for comments and the report)."""
    if defn.aggregation is not None:
        return str(defn.aggregation)
    attribute = defn.attribute
    assert attribute is not None  # a definition has an aggregation or an attribute
    return f"{attribute.mode} of {attribute.column}"


def feature_specs(
    client: Client, registry: SchemaSource, names: Sequence[str]
) -> list[FeatureSpec]:
    """The current (or ``name@v``-pinned) versions of ``names``, compiled against their
    source subject's latest schema (payloads in ``events`` are upcast to it)."""
    specs = []
    for defn in load_definitions(client, list(names)):
        compiled = defn.compiled(
            registry.latest(defn.source), reader=field_reader(registry, defn.source)
        )
        specs.append(spec_from_compiled(compiled, aggregation=_written(defn)))
    return specs
