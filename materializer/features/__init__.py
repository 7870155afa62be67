"""Feature definitions, their ClickHouse objects, backfills and online reads.

One definition (YAML) serves both online reads and training sets: both are compiled from
:meth:`FeatureDefinition.compiled`, so they cannot drift.
"""

from materializer.features._catalog import FeatureRecord, load_definitions
from materializer.features._expr import AggregateCall
from materializer.features._store import FeatureStore
from materializer.features._views import SubjectViews, view_name
from materializer.features.definition import (
    CompiledFeature,
    Entity,
    FeatureDefinition,
    FeatureKind,
    parse_definitions,
    parse_window,
)
from materializer.features.routes import router
from sluicegate.sqlgate import FunctionAllowlist

__all__ = [
    "AggregateCall",
    "CompiledFeature",
    "Entity",
    "FeatureDefinition",
    "FeatureKind",
    "FeatureRecord",
    "FeatureStore",
    "FunctionAllowlist",
    "SubjectViews",
    "load_definitions",
    "parse_definitions",
    "parse_window",
    "router",
    "view_name",
]
