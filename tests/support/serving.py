"""Starting a real `sluicegate serve` for a test, the way the demo does
(sluicegate/demo/server.py): one place the integration helpers and tests import from."""

from __future__ import annotations

from pathlib import Path

from sluicegate.demo.server import ServeProcess, start_serve

__all__ = ["Server", "start_server"]

Server = ServeProcess


def start_server(data_dir: Path, extra_env: dict[str, str] | None = None) -> Server:
    """Start `sluicegate serve` on ``data_dir`` (a free port) and wait for /healthz."""
    return start_serve(data_dir, extra_env=extra_env)
