"""Fixtures shared by both test tiers (see tests/README.md)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topics, subjects, tables and connectors."""
    return uuid.uuid4().hex[:10]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A real `sluicegate serve` process."""

    url: str
    admin_token: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, token: str | None = None) -> httpx.Client:
        tok = self.admin_token if token is None else token
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `sluicegate ARGS` against this server, as a user would."""
        return subprocess.run(
            [str(ROOT / ".venv" / "bin" / "sluicegate"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_server(data_dir: Path, extra_env: dict[str, str] | None = None) -> Server:
    """Start `sluicegate serve` on a free port and wait for /healthz."""
    port = free_port()
    token = "admin-" + uuid.uuid4().hex
    env = {
        **os.environ,
        "SLUICEGATE_PORT": str(port),
        "SLUICEGATE_DATA_DIR": str(data_dir),
        "SLUICEGATE_ADMIN_TOKEN": token,
        "SLUICEGATE_SERVER_URL": f"http://127.0.0.1:{port}",
        "TZ": "UTC",
        **(extra_env or {}),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sluicegate", "serve"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sluicegate serve exited:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return Server(url, token, data_dir, env, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"sluicegate serve not healthy in 60 s:\n{log.read_text()[-4000:]}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A fresh `sluicegate serve` with its own data directory, for one test."""
    srv = start_server(tmp_path / "sg")
    yield srv
    srv.stop()
