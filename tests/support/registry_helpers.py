"""Helpers shared by the registry integration tests."""

from __future__ import annotations

import json
from typing import Any


def avro_record(*fields: tuple[Any, ...], name: str = "Event") -> str:
    """An Avro record schema text; a field is (name, type) or (name, type, default)."""
    out = []
    for spec in fields:
        field: dict[str, Any] = {"name": spec[0], "type": spec[1]}
        if len(spec) > 2:
            field["default"] = spec[2]
        out.append(field)
    return json.dumps({"type": "record", "name": name, "namespace": "test", "fields": out})
