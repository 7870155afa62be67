"""The SQL surface of the log as the latest version: one view per subject,
``sluicegate.latest_<subject>`` (dots and dashes as ``_``), with the envelope columns and
one typed column per field of the subject's latest version, events stored under older
versions upcast through the read plan exactly as features read them.

The views are (re)created by the process that owns the store at start and within seconds
of a subject's new version; ``SELECT * FROM latest_reddit_upvote`` through ``/v1/sql``
then shows every upvote as the newest version says it looks.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from sqlglot import exp

from materializer.features._fields import schema_fields
from materializer.features._upcast import field_reader
from materializer.loader import EVENT_COLUMNS
from sluicegate.errors import SluicegateError
from sluicegate.sqlgate import DIALECT

__all__ = ["SubjectViews", "view_name", "view_sql"]

log = logging.getLogger("sluicegate.features.views")

# the columns of `events` a view shows beside the fields: not the subject (the view is
# one subject's), nor the stored payload and where it was read from
ENVELOPE = tuple(
    c
    for c in EVENT_COLUMNS
    if c
    not in ("subject", "schema_id", "payload", "kafka_topic", "kafka_partition", "kafka_offset")
)


def view_name(subject: str) -> str:
    """``reddit.upvote`` -> ``latest_reddit_upvote``."""
    return "latest_" + re.sub(r"[^A-Za-z0-9_]", "_", subject)


def _ident(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect=DIALECT)


def view_sql(registry: Any, subject: str, database: str, version: int | None = None) -> str:
    """The ``CREATE OR REPLACE VIEW`` statement of ``subject``'s view, as of its latest
    version (or ``version``)."""
    latest = registry.latest(subject) if version is None else registry.version(subject, version)
    reader = field_reader(registry, subject, int(latest.version))
    columns = list(ENVELOPE)
    for path, ftype in sorted(schema_fields(str(latest.schema_type), latest.schema).items()):
        if path in ENVELOPE:
            continue
        try:
            columns.append(f"{reader.sql(path, ftype)} AS {_ident(path)}")
        except SluicegateError as exc:  # a derive ClickHouse cannot compute: left out
            log.warning("view of %s: column %s left out: %s", subject, path, exc)
    subject_lit = exp.Literal.string(subject).sql(dialect=DIALECT)
    return (
        f"CREATE OR REPLACE VIEW {_ident(database)}.{_ident(view_name(subject))} AS "
        f"SELECT {', '.join(columns)} FROM {_ident(database)}.events "
        f"WHERE subject = {subject_lit}"
    )


class SubjectViews:
    """Keeps every subject's view in step with its latest version (a background thread
    checks the registry every ``interval_s``)."""

    def __init__(
        self, client: Client, registry: Any, database: str, *, interval_s: float = 3.0
    ) -> None:
        self._client = client
        self._registry = registry
        self._database = database
        self._interval = interval_s
        self._made: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="subject-views", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def refresh(self) -> None:
        """Create or replace the view of every subject whose latest version changed (one
        registry query finds them)."""
        for subject, version in sorted(self._registry.latest_versions().items()):
            if self._made.get(subject) == version:
                continue
            try:
                self._client.command(view_sql(self._registry, subject, self._database, version))
                self._made[subject] = version
            except (ClickHouseError, SluicegateError) as exc:
                log.warning("view of %s not refreshed: %s", subject, exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # the views must never stop the store
                log.exception("refreshing the subject views failed")
            self._stop.wait(self._interval)
