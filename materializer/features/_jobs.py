"""Background jobs (backfills, rebuilds) with progress the API reports and the CLI draws."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Job", "Jobs"]

_KEEP = 200  # finished jobs remembered


@dataclass
class Job:
    """One backfill or rebuild. ``done``/``total`` count events of `events` processed."""

    id: str
    kind: str
    features: list[str]
    state: str = "running"  # running | done | failed
    phase: str = "starting"
    done: int = 0
    total: int = 0
    error: str | None = None
    split_ms: int | None = None  # T0: views take events loaded from here, the backfill before
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def progress(self, done: int, total: int, phase: str) -> None:
        self.done, self.total, self.phase = done, total, phase

    def view(self) -> dict[str, Any]:
        elapsed = (self.finished or time.time()) - self.started
        eta = None
        if self.state == "running" and self.done and self.total > self.done:
            eta = round(elapsed / self.done * (self.total - self.done), 1)
        return {
            "id": self.id,
            "kind": self.kind,
            "features": self.features,
            "state": self.state,
            "phase": self.phase,
            "done": self.done,
            "total": self.total,
            "elapsed_s": round(elapsed, 2),
            "eta_s": eta,
            "error": self.error,
            "split_ms": self.split_ms,
        }


class Jobs:
    """Runs jobs one at a time on background threads (DDL and backfills never interleave)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._run_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, kind: str, features: list[str], work: Callable[[Job], None]) -> Job:
        job = Job(uuid.uuid4().hex[:12], kind, features)
        self._jobs[job.id] = job
        if len(self._jobs) > _KEEP:
            for old in [j for j in self._jobs.values() if j.state != "running"][:-_KEEP]:
                self._jobs.pop(old.id, None)

        def run() -> None:
            with self._run_lock:
                try:
                    work(job)
                    job.state = "done"
                    job.phase = "done"
                except Exception as exc:  # reported through the job; the store cleaned up
                    job.state, job.error = "failed", str(exc)
                finally:
                    job.finished = time.time()

        thread = threading.Thread(target=run, name=f"feature-{kind}-{job.id}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the running jobs (used at shutdown and by tests)."""
        for t in list(self._threads):
            t.join(timeout)
