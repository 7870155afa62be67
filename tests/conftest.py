"""Fixtures shared by both test tiers (see tests/README.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluicegate.demo.server import ServeProcess, free_port, start_serve

__all__ = ["Server", "free_port", "start_server"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topics, subjects, tables and connectors."""
    return uuid.uuid4().hex[:10]


# The tests start servers the way the demo does (sluicegate/demo/server.py).
Server = ServeProcess


def start_server(data_dir: Path, extra_env: dict[str, str] | None = None) -> Server:
    """Start `sluicegate serve` on a free port and wait for /healthz."""
    return start_serve(data_dir, extra_env=extra_env)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A fresh `sluicegate serve` with its own data directory, for one test."""
    srv = start_server(tmp_path / "sg")
    yield srv
    srv.stop()
