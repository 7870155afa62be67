"""Sample data shared by the registry unit tests."""

from __future__ import annotations

import json
from typing import Any

ADMIN_TOKEN = "test-admin-token"


def avro(*fields: tuple[Any, ...], name: str = "Event") -> str:
    """An Avro record text; a field is (name, type) or (name, type, default)."""
    out = []
    for spec in fields:
        f: dict[str, Any] = {"name": spec[0], "type": spec[1]}
        if len(spec) > 2:
            f["default"] = spec[2]
        out.append(f)
    return json.dumps({"type": "record", "name": name, "fields": out})
