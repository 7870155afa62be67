"""The Python entry point: ``training_set(...)`` returns a lazy :class:`TrainingJob`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from clickhouse_connect.driver.client import Client

from materializer.training._features import SchemaSource, feature_specs
from materializer.training._job import TrainingJob
from materializer.training._model import FeatureSpec, ObservationsSpine, SubjectSpine
from materializer.training._observations import load_spine_file, read_spine_table
from materializer.training._spine import resolve_spine
from materializer.training.sql import HOT_EVENTS_PER_WINDOW
from sluicegate.errors import BadRequest
from sluicegate.naming import CLICKHOUSE_DATABASE

__all__ = ["training_set"]


def training_set(
    client: Client,
    spine: ObservationsSpine | SubjectSpine | Path | str,
    features: Sequence[str | FeatureSpec],
    *,
    registry: SchemaSource | None = None,
    arrival_time: bool = False,
    database: str = CLICKHOUSE_DATABASE,
    hot_events_per_window: int = HOT_EVENTS_PER_WINDOW,
) -> TrainingJob:
    """A point-in-time training set of ``features`` for every row of ``spine``.

    ``spine``: an observations spine (or its name), a subject whose events are the rows,
    or a Parquet/CSV file (loaded into ``observations`` first, see ``load_spine_file``).
    ``features``: stored feature names (``name`` or ``name@version``; needs ``registry``
    to compile them) or ready :class:`FeatureSpec` objects. Nothing runs until the job's
    ``to_arrow()``/``to_pandas()``/``to_parquet()`` (``to_sql()`` only renders).
    ``hot_events_per_window``: an entity with more events per window than this (on
    average) has its windowed features read from bucket states, so one busy entity costs
    its spine rows a bounded number of reads each.
    """
    if isinstance(spine, Path):
        fmt = spine.suffix.lower().lstrip(".")
        data = spine.read_bytes()
        name, _ = load_spine_file(
            client, read_spine_table(data, fmt), database=database, source_bytes=data
        )
        spine = ObservationsSpine(name)
    elif isinstance(spine, str):
        spine = ObservationsSpine(spine)
    names = [f for f in features if isinstance(f, str)]
    specs = [f for f in features if isinstance(f, FeatureSpec)]
    if names:
        if registry is None:
            raise BadRequest("features by name need the registry to compile them")
        if specs:
            raise BadRequest("features: give names or FeatureSpec objects, not both")
        specs = feature_specs(client, registry, names)
    return TrainingJob(
        client,
        resolve_spine(client, spine, database, registry),
        specs,
        database=database,
        arrival_time=arrival_time,
        hot_events_per_window=hot_events_per_window,
    )
