"""pydantic validation errors as the violations every 4xx body carries:
``{"path", "rule", "message"}`` per problem, the path dotted, pydantic's "Value error, "
prefix dropped and an unknown key said in plain words."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["first_message", "violations"]


def violations(
    errors: Iterable[Mapping[str, Any]], *, prefix: Sequence[str] = (), empty_path: str = ""
) -> list[dict[str, str]]:
    """``errors`` (``ValidationError.errors()``), each under ``prefix``; a problem of the
    whole document gets ``empty_path``."""
    out = []
    for e in errors:
        path = ".".join([*prefix, *(str(p) for p in e["loc"])]) or empty_path
        if e["type"] == "extra_forbidden":
            out.append({"path": path, "rule": "unknown_key", "message": "unknown key"})
            continue
        message = str(e["msg"]).removeprefix("Value error, ")
        out.append({"path": path, "rule": str(e["type"]), "message": message})
    return out


def first_message(found: Sequence[Mapping[str, str]], default: str = "invalid request") -> str:
    """``path: message`` of the first violation, the one a 4xx message names."""
    if not found:
        return default
    first = found[0]
    return f"{first['path']}: {first['message']}" if first["path"] else first["message"]
