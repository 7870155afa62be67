"""Kafka client settings shared by every consumer Sluicegate runs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["member_of", "static_membership"]


def member_of(data_dir: Path) -> str:
    """The identity of the process that owns ``data_dir`` (one process per directory):
    the same after a restart on the same directory, different for every other one."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]


def static_membership(
    member: str | None, group: str, subscription: Iterable[str]
) -> dict[str, Any]:
    """``group.instance.id`` for a consumer of ``group`` run by ``member``, or nothing.

    With static membership a consumer restarted after kill -9 gets its partitions back at
    once instead of waiting for the dead session to expire. The id also names the
    subscription: a restart that subscribes to other topics joins as a new member (the
    old one expires after its session timeout) instead of being handed the old topics."""
    if member is None:
        return {}
    topics = hashlib.sha256("\n".join(sorted(subscription)).encode()).hexdigest()[:8]
    return {"group.instance.id": f"{group}-{member}-{topics}"}
