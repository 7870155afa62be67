"""The bootstrap admin token: SLUICEGATE_ADMIN_TOKEN, or one generated at the first
start and kept (mode 0600) in ``DATA_DIR/admin.token``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from registry._auth import new_token

ADMIN_TOKEN_FILE = "admin.token"  # noqa: S105 - a file name, not a secret
_log = logging.getLogger("sluicegate.registry")


def ensure_admin_token(data_dir: Path, configured: str | None) -> str:
    """The configured admin token, else the one in ``data_dir/admin.token``, created
    (readable by the owner only) when missing."""
    if configured:
        return configured
    path = data_dir / ADMIN_TOKEN_FILE
    existing = read_admin_token_file(data_dir)
    if existing:
        return existing
    data_dir.mkdir(parents=True, exist_ok=True)
    token = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    _log.warning("generated the bootstrap admin token (team 'admin') in %s", path.resolve())
    return token


def read_admin_token_file(data_dir: Path) -> str | None:
    """The token in ``data_dir/admin.token``, if there is one."""
    path = data_dir / ADMIN_TOKEN_FILE
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
