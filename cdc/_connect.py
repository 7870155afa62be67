"""A small client of the Kafka Connect REST API, with its failures mapped to Sluicegate
errors at this boundary (httpx never leaks out)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from cdc._render import CONNECTOR_CLASS
from sluicegate.errors import BadRequest, ResourceNotFound, SluicegateError, Unavailable

__all__ = ["ConnectClient", "ConnectorStatus", "TaskStatus", "first_line"]


def first_line(trace: str | None) -> str | None:
    """The plain-words part of a Java stack trace: its first line, without the exception
    class when a message follows it."""
    if not trace:
        return None
    line = trace.strip().splitlines()[0].strip()
    head, sep, rest = line.partition(": ")
    if sep and "." in head and " " not in head:  # "org.x.SomeException: message"
        return rest.strip() or line
    return line


@dataclass(frozen=True)
class TaskStatus:
    id: int
    state: str
    worker_id: str | None
    error: str | None


@dataclass(frozen=True)
class ConnectorStatus:
    name: str
    state: str  # RUNNING, PAUSED, STOPPED, FAILED, UNASSIGNED, RESTARTING; ABSENT if unknown
    worker_id: str | None
    error: str | None
    tasks: list[TaskStatus] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return (
            self.state == "RUNNING"
            and bool(self.tasks)
            and all(t.state == "RUNNING" for t in self.tasks)
        )

    @property
    def failed(self) -> bool:
        return self.state == "FAILED" or any(t.state == "FAILED" for t in self.tasks)

    @property
    def last_error(self) -> str | None:
        """The first failure in plain words (connector first, then tasks)."""
        if self.error:
            return self.error
        for t in self.tasks:
            if t.error:
                return f"task {t.id}: {t.error}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "worker_id": self.worker_id,
            "error": self.last_error,
            "tasks": [
                {"id": t.id, "state": t.state, "worker_id": t.worker_id, "error": t.error}
                for t in self.tasks
            ],
        }


class ConnectClient:
    """Kafka Connect's REST API (``Settings.connect_url``)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ConnectClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"Kafka Connect at {self.base_url} is not reachable: {exc}", retry_after=5
            ) from exc

    def _check(self, response: httpx.Response, what: str) -> Any:
        if response.status_code < 300:
            return response.json() if response.content else None
        try:
            message = response.json().get("message") or response.text
        except ValueError:
            message = response.text
        if response.status_code == 404:
            raise ResourceNotFound(f"{what}: {message}")
        if response.status_code in (400, 409, 422):
            raise BadRequest(f"{what}: {message}")
        if response.status_code >= 500:
            raise Unavailable(f"{what}: Kafka Connect answered {response.status_code}: {message}")
        raise SluicegateError(f"{what}: Kafka Connect answered {response.status_code}: {message}")

    # ------------------------------------------------------------------ API
    def validate(self, name: str, config: dict[str, str]) -> dict[str, list[str]]:
        """Connect's own validation of ``config``: {property: [errors]} (empty when valid).
        Debezium uses it to test the database connection too."""
        body = {"name": name, **config}
        r = self._request("PUT", f"/connector-plugins/{CONNECTOR_CLASS}/config/validate", json=body)
        doc = self._check(r, "validate connector config")
        errors: dict[str, list[str]] = {}
        for item in doc.get("configs", []):
            value = item.get("value") or {}
            if value.get("errors"):
                errors[value["name"]] = list(value["errors"])
        return errors

    def put_config(self, name: str, config: dict[str, str]) -> bool:
        """Create or update (idempotent); True when the connector was created."""
        r = self._request("PUT", f"/connectors/{name}/config", json=config)
        self._check(r, f"connector {name}")
        return r.status_code == 201

    def config(self, name: str) -> dict[str, str]:
        config: dict[str, str] = self._check(
            self._request("GET", f"/connectors/{name}/config"), f"connector {name}"
        )
        return config

    def exists(self, name: str) -> bool:
        r = self._request("GET", f"/connectors/{name}")
        if r.status_code == 404:
            return False
        self._check(r, f"connector {name}")
        return True

    def status(self, name: str) -> ConnectorStatus:
        """Connector and task state; state ABSENT when Connect does not know the name."""
        r = self._request("GET", f"/connectors/{name}/status")
        if r.status_code == 404:
            return ConnectorStatus(name, "ABSENT", None, None)
        doc = self._check(r, f"connector {name}")
        conn = doc.get("connector", {})
        tasks = [
            TaskStatus(int(t["id"]), t["state"], t.get("worker_id"), first_line(t.get("trace")))
            for t in doc.get("tasks", [])
        ]
        return ConnectorStatus(
            name,
            conn.get("state", "UNKNOWN"),
            conn.get("worker_id"),
            first_line(conn.get("trace")),
            tasks,
        )

    def pause(self, name: str) -> None:
        self._check(self._request("PUT", f"/connectors/{name}/pause"), f"pause {name}")

    def resume(self, name: str) -> None:
        self._check(self._request("PUT", f"/connectors/{name}/resume"), f"resume {name}")

    def stop(self, name: str) -> None:
        self._check(self._request("PUT", f"/connectors/{name}/stop"), f"stop {name}")

    def restart(self, name: str) -> None:
        """Restart the connector and all its tasks."""
        r = self._request(
            "POST",
            f"/connectors/{name}/restart",
            params={"includeTasks": "true", "onlyFailed": "false"},
        )
        self._check(r, f"restart {name}")

    def delete_offsets(self, name: str) -> None:
        """Forget the connector's stored source offsets (it must be STOPPED)."""
        r = self._request("DELETE", f"/connectors/{name}/offsets")
        self._check(r, f"reset offsets of {name}")

    def delete(self, name: str) -> None:
        self._check(self._request("DELETE", f"/connectors/{name}"), f"delete {name}")

    def wait(self, name: str, states: tuple[str, ...], *, timeout: float = 60.0) -> ConnectorStatus:
        """Poll until the connector (and every task, for RUNNING) reaches one of ``states``
        or fails; returns the last status seen (callers check ``failed``/``state``)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(name)
            if st.failed:
                return st
            if st.state in states and (st.state != "RUNNING" or st.running):
                return st
            if time.monotonic() > deadline:
                return st
            time.sleep(0.5)
