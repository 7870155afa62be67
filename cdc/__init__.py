"""Change data capture: Debezium PostgreSQL connectors per database config, and the bridge
that turns their raw change topics into governed, versioned subjects ``cdc.<db>.<table>``.
See docs/cdc.md."""

from cdc._bridge import DatabaseBridge, create_raw_topics
from cdc._config import (
    COMMIT_TIME_FIELD,
    ConnectionConfig,
    DatabaseConfig,
    IncompatiblePolicy,
    TableConfig,
    load_config,
    load_configs,
    parse_config,
    resolve_config,
)
from cdc._connect import ConnectClient, ConnectorStatus
from cdc._govern import TableGovernor, TableHeld, migration_between
from cdc._http import router
from cdc._render import render_connector_config
from cdc._service import CdcService, start_cdc
from cdc._shape import Shape, fits, infer_shape, json_schema
from cdc._translate import event_id_of

__all__ = [
    "COMMIT_TIME_FIELD",
    "CdcService",
    "ConnectClient",
    "ConnectionConfig",
    "ConnectorStatus",
    "DatabaseBridge",
    "DatabaseConfig",
    "IncompatiblePolicy",
    "Shape",
    "TableConfig",
    "TableGovernor",
    "TableHeld",
    "create_raw_topics",
    "event_id_of",
    "fits",
    "infer_shape",
    "json_schema",
    "load_config",
    "load_configs",
    "migration_between",
    "parse_config",
    "render_connector_config",
    "resolve_config",
    "router",
    "start_cdc",
]
