"""Fixtures shared by both test tiers (see tests/README.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluicegate.demo.server import ServeProcess, start_serve


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topics, subjects, tables and connectors."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServeProcess]:
    """A fresh `sluicegate serve` with its own data directory, for one test (started as
    the demo starts it; tests/support/serving.py for servers with settings)."""
    srv = start_serve(tmp_path / "sg")
    yield srv
    srv.stop()
