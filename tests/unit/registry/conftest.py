"""Fixtures for the registry unit tests: a Registry on a fresh SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_samples import ADMIN_TOKEN

from registry import Principal, Registry


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[Registry]:
    r = Registry.open(f"sqlite:///{tmp_path / 'registry.db'}", admin_token=ADMIN_TOKEN)
    yield r
    r.close()


@pytest.fixture
def admin() -> Principal:
    return Principal("admin", admin=True)
