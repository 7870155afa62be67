"""The local stack holds the subjects a real team has: a thousand subjects, each with its
governed topic (created with SLUICEGATE_TOPIC_PARTITIONS partitions), keep accepting and
loading, and /readyz stays ready."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest
from confluent_kafka.admin import AdminClient
from support.serving import start_server

if TYPE_CHECKING:
    from tests.integration.conftest import Stack

SUBJECTS = 1000
SCHEMA = orjson.dumps({"type": "object", "properties": {"n": {"type": "integer"}}}).decode()

pytestmark = pytest.mark.timeout(900)


def test_a_thousand_subjects_keep_accepting_and_loading(
    stack: Stack, tmp_path: Path, unique: str, pytestconfig: pytest.Config
) -> None:
    prefix = f"many{unique}"
    subjects = [f"{prefix}.s{i:04d}" for i in range(SUBJECTS)]
    server = start_server(
        tmp_path / "sg",
        extra_env={
            "SLUICEGATE_TOPIC_PARTITIONS": "1",
            "SLUICEGATE_MATERIALIZE_TOPICS": f"^sg\\.{prefix}\\..*",
        },
    )
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap, "log_level": 0})
    try:
        with server.client(timeout=300) as http:
            for subject in subjects:
                r = http.post(
                    f"/subjects/{subject}/versions", json={"schema": SCHEMA, "schemaType": "JSON"}
                )
                assert r.status_code == 200, r.text
            for round_ in (1, 2):
                batch = [{"subject": s, "event": {"n": round_}} for s in subjects]
                r = http.post(
                    "/v1/events",
                    content=orjson.dumps(batch),
                    headers={"Content-Type": "application/json"},
                )
                assert r.status_code == 202, r.text[:500]
                assert r.json()["accepted"] == SUBJECTS
            deadline = time.monotonic() + 300
            while True:
                r = http.post(
                    "/v1/sql",
                    json={
                        "query": "SELECT uniqExact(subject), count() "
                        f"FROM events WHERE startsWith(subject, '{prefix}.')"
                    },
                )
                assert r.status_code == 200, r.text
                if r.json()["rows"] == [[SUBJECTS, 2 * SUBJECTS]]:
                    break
                assert time.monotonic() < deadline, r.json()["rows"]
                time.sleep(1)
            ready = http.get("/readyz")
            assert ready.status_code == 200, ready.text
            # the console pages and searches them: 50 a page, one found by name
            started = time.monotonic()
            page = http.get("/ui/subjects", params={"q": prefix, "page": 7})
            took = time.monotonic() - started
            assert page.status_code == 200, page.text[:500]
            assert "page 7 of 20 (1000 in all)" in page.text
            assert page.text.count(f"/ui/subjects/{prefix}.s") == 50
            assert f"{prefix}.s0300" in page.text and f"{prefix}.s0350" not in page.text
            found = http.get("/ui/subjects", params={"q": f"{prefix}.s0999"})
            assert found.text.count(f"/ui/subjects/{prefix}.s") == 1
            lineage = http.get("/ui/lineage", params={"q": prefix})
            assert lineage.status_code == 200 and "page 1 of 20" in lineage.text
            print(f"console: a page of 50 of {SUBJECTS} subjects in {took * 1000:.0f} ms")
        topics = admin.list_topics(timeout=30).topics
        ours = [t for t in topics if t.startswith(f"sg.{prefix}.")]
        assert len(ours) == SUBJECTS
        assert {len(topics[t].partitions) for t in ours} == {1}
    finally:
        server.stop()
        names = [t for t in admin.list_topics(timeout=30).topics if t.startswith(f"sg.{prefix}.")]
        if names:
            for future in admin.delete_topics(names, operation_timeout=120).values():
                future.result(120)
