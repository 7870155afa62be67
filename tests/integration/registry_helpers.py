"""Helpers shared by the registry integration tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest


def avro_record(*fields: tuple[Any, ...], name: str = "Event") -> str:
    """An Avro record schema text; a field is (name, type) or (name, type, default)."""
    out = []
    for spec in fields:
        field: dict[str, Any] = {"name": spec[0], "type": spec[1]}
        if len(spec) > 2:
            field["default"] = spec[2]
        out.append(field)
    return json.dumps({"type": "record", "name": name, "namespace": "test", "fields": out})


def server_starter(config: pytest.Config) -> Callable[..., Any]:
    """tests/conftest.py's ``start_server`` (for servers with extra settings)."""
    for plugin in config.pluginmanager.get_plugins():
        fn = getattr(plugin, "start_server", None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    raise LookupError("start_server not found in the loaded conftest modules")
