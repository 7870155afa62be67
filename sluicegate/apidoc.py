"""The API reference, generated from the OpenAPI document of `sluicegate serve`
(`sluicegate openapi --format markdown > docs/api.md`); a test keeps docs/api.md current."""

from __future__ import annotations

from typing import Any

from sluicegate.app import create_app
from sluicegate.settings import Settings


def openapi() -> dict[str, Any]:
    """The OpenAPI document of a server with every role."""
    return create_app(Settings(role="all")).openapi()


def markdown(spec: dict[str, Any]) -> str:
    """A Markdown reference: one section per tag, one line per operation."""
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            tag = (op.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append((method.upper(), path, op))
    lines = [
        "# API reference",
        "",
        f"Generated from the OpenAPI document of `sluicegate serve` {spec['info']['version']}"
        " (also served live at `/docs` and `/openapi.json`). Regenerate with",
        "`sluicegate openapi --format markdown > docs/api.md`.",
        "",
        'Every error answers `{"error_code": int, "message": str, ...}`'
        " (Confluent's shape) with the HTTP status of its kind.",
    ]
    for tag in sorted(by_tag):
        lines += ["", f"## {tag}", "", "| method | path | what it does |", "|---|---|---|"]
        for method, path, op in sorted(by_tag[tag], key=lambda x: (x[1], x[0])):
            summary = (op.get("description") or op.get("summary") or "").strip().split("\n\n")[0]
            summary = " ".join(summary.split()).replace("|", "\\|")
            lines.append(f"| {method} | `{path}` | {summary} |")
    return "\n".join(lines) + "\n"
