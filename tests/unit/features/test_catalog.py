"""Resolving feature names to stored versions, and job progress reports."""

from __future__ import annotations

import threading

import pytest

from materializer.features._catalog import ACTIVE, DELETED, FeatureRecord, resolve_records
from materializer.features._jobs import Jobs
from sluicegate.errors import ResourceNotFound

SPEC = {
    "name": "f",
    "entity": {"type": "user"},
    "source": "s",
    "aggregation": "count()",
    "_schema_version": 3,
}


def rec(version: int, status: str = ACTIVE) -> FeatureRecord:
    return FeatureRecord("f", version, 0, SPEC, status, "ml", 0, 0)


def test_name_is_the_newest_active_version_and_name_at_v_pins() -> None:
    records = [rec(1), rec(2), rec(3, DELETED)]
    assert [r.version for r in resolve_records(records, ["f", "f@1", "f@v2"])] == [2, 1, 2]
    with pytest.raises(ResourceNotFound, match="f@3"):
        resolve_records(records, ["f@3"])
    with pytest.raises(ResourceNotFound, match="'g'"):
        resolve_records(records, ["g"])


def test_stored_record_gives_back_its_definition() -> None:
    d = rec(2).definition
    assert d.version == 2 and d.aggregation == "count()" and d.ref == "f@2"
    assert rec(2).objects.table == "fs_user" and rec(2).objects.state(0) == "f_f__v2g0_s0"


def test_jobs_report_progress_eta_and_failure() -> None:
    jobs = Jobs()

    def work(job):  # type: ignore[no-untyped-def]
        job.progress(50, 100, "backfilling")
        halfway.set()
        assert resume.wait(10)

    halfway, resume = threading.Event(), threading.Event()
    job = jobs.start("backfill", ["f@1"], work)
    assert halfway.wait(10)
    view = job.view()
    assert view["state"] == "running" and view["done"] == 50 and view["eta_s"] is not None
    resume.set()
    jobs.wait()
    assert job.view()["state"] == "done"

    def boom(job):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk full")

    failed = jobs.start("backfill", ["g@1"], boom)
    jobs.wait()
    assert failed.view()["state"] == "failed" and failed.view()["error"] == "disk full"
