"""The loader: governed Kafka topics -> ClickHouse ``events`` (and ``dead_letters``),
exactly once as seen by every query. See docs/materializer.md."""

from materializer.loader._batch import DEAD_LETTER_COLUMNS, EVENT_COLUMNS
from materializer.loader._config import MaterializerConfig
from materializer.loader._consumer import Materializer
from materializer.loader._http import router
from materializer.loader._metrics import LoaderMetrics
from materializer.loader._rejections import RejectionsLoader
from materializer.loader._replays import ReplayLog
from materializer.loader._service import group_id, start_materializer, store_id
from materializer.loader._sink import ClickHouseSink
from materializer.loader._sql import MAX_RESULT_ROWS, ReadOnlySql, SqlResult

__all__ = [
    "DEAD_LETTER_COLUMNS",
    "EVENT_COLUMNS",
    "MAX_RESULT_ROWS",
    "ClickHouseSink",
    "LoaderMetrics",
    "Materializer",
    "MaterializerConfig",
    "ReadOnlySql",
    "RejectionsLoader",
    "ReplayLog",
    "SqlResult",
    "group_id",
    "router",
    "start_materializer",
    "store_id",
]
