"""Point-in-time training sets: for every spine row (an observation, or an event of a
subject), each feature's value as it was strictly before the row's time, computed in
ClickHouse from the same definitions online serving uses. See docs/training-sets.md."""

from materializer.training._api import training_set
from materializer.training._job import TrainingJob, report_from_arrow, report_path
from materializer.training._lineage import record_run, spines_using
from materializer.training._model import FeatureSpec, ObservationsSpine, SubjectSpine
from materializer.training._observations import (
    Observation,
    append_observations,
    load_spine_file,
    read_spine_table,
    spine_summary,
)
from materializer.training._report import TrainingReport

__all__ = [
    "FeatureSpec",
    "Observation",
    "ObservationsSpine",
    "SubjectSpine",
    "TrainingJob",
    "TrainingReport",
    "append_observations",
    "load_spine_file",
    "read_spine_table",
    "record_run",
    "report_from_arrow",
    "report_path",
    "spine_summary",
    "spines_using",
    "training_set",
]
