"""A re-run (of the demo, of the README examples) starts clean: the connector with its
stored offsets, the replication slot, topics, consumer groups and data directory of an
earlier run are removed first."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import httpx
import psycopg
from confluent_kafka.admin import AdminClient

from sluicegate.naming import topic_for_subject


def remove_connector(connect_url: str, connector: str) -> None:
    """Stop the connector, forget its offsets (so the next one snapshots again), delete it."""
    base = f"{connect_url}/connectors/{connector}"
    if httpx.get(base, timeout=30).status_code == 404:
        return
    httpx.put(f"{base}/stop", timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = httpx.get(f"{base}/status", timeout=30).json().get("connector", {}).get("state")
        if state == "STOPPED":
            break
        time.sleep(0.3)
    httpx.delete(f"{base}/offsets", timeout=30)
    httpx.delete(base, timeout=30)


def drop_slot(superuser_dsn: str, slot: str) -> None:
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        for _ in range(60):
            active = conn.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            if active is None:
                return
            if not active[0]:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                return
            time.sleep(0.5)


def delete_topics(bootstrap: str, prefixes: tuple[str, ...], groups: list[str]) -> None:
    """Delete the topics starting with ``prefixes`` (waiting until they are gone) and the
    consumer ``groups``."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefixes)]
    if topics:
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            future.result()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = [t for t in admin.list_topics(timeout=10).topics if t in topics]
        if not left:
            break
        time.sleep(0.5)
    for future in admin.delete_consumer_groups(groups, request_timeout=30).values():
        with contextlib.suppress(Exception):  # the group does not exist on a first run
            future.result()


def reset(
    connect_url: str,
    bootstrap: str,
    superuser_dsn: str,
    data_dir: Path,
    *,
    cdc_name: str,
    subject_prefixes: tuple[str, ...],
) -> None:
    """Remove everything an earlier run left behind: the connector of CDC config
    ``cdc_name`` with its offsets, slot, raw and governed topics and bridge group, the
    topics of subjects starting with ``subject_prefixes``, and ``data_dir``."""
    remove_connector(connect_url, f"sluicegate-{cdc_name}")
    drop_slot(superuser_dsn, f"sluicegate_{cdc_name}")
    prefixes = (f"cdcraw.{cdc_name}.", topic_for_subject(f"cdc.{cdc_name}."))
    delete_topics(
        bootstrap,
        prefixes + tuple(topic_for_subject(p) for p in subject_prefixes),
        [f"sluicegate-cdc-{cdc_name}"],
    )
    shutil.rmtree(data_dir, ignore_errors=True)
