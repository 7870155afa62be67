"""Run `sluicegate serve` as a child process and wait until it is ready, as a user would
start it in another terminal. Used by the demo and by the integration tests."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServeProcess:
    """A running `sluicegate serve` with its own data directory and admin token."""

    url: str
    admin_token: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, token: str | None = None, timeout: float = 60) -> httpx.Client:
        """An HTTP client authenticated with ``token`` (default: the admin token; "" for none)."""
        tok = self.admin_token if token is None else token
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def cli(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run ``sluicegate ARGS`` against this server."""
        return subprocess.run(
            [sys.executable, "-m", "sluicegate", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 30 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_serve(
    data_dir: Path,
    *,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
    ready_path: str = "/healthz",
    timeout: float = 90,
) -> ServeProcess:
    """Start ``sluicegate serve`` on ``port`` (default: a free one) with its own admin token
    and wait until ``ready_path`` answers 200."""
    port = port or free_port()
    token = "admin-" + secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SLUICEGATE_PORT": str(port),
        "SLUICEGATE_DATA_DIR": str(data_dir),
        "SLUICEGATE_ADMIN_TOKEN": token,
        "SLUICEGATE_SERVER_URL": url,
        "TZ": "UTC",
        **(extra_env or {}),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "serve.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sluicegate", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sluicegate serve exited:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url + ready_path, timeout=2).status_code == 200:
                return ServeProcess(url, token, data_dir, env, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"sluicegate serve not ready in {timeout:.0f} s:\n{log.read_text()[-4000:]}")
