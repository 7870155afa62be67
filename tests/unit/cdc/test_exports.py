"""The cdc package's public API is pinned."""

from __future__ import annotations

import cdc


def test_public_api_is_pinned() -> None:
    assert cdc.__all__ == [
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
    for name in cdc.__all__:
        assert hasattr(cdc, name), name
