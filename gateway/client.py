"""A thin Python client for posting events to a Sluicegate gateway.

    with SluicegateClient("http://127.0.0.1:8080", token) as sg:
        sg.post("shop.order", {"order_id": "o-1", "ts": "2026-01-01T00:00:00Z"})
        results = sg.post_batch("shop.order", events)   # one result per event, in order

Every event gets its event id before the first attempt (its own ``event_id`` field, or a
new UUIDv7), so a retry after a timeout, a dropped connection or a 503 can never
duplicate it. 503s and connection errors are retried with exponential backoff, honouring
``Retry-After``; of a batch only the events Kafka did not acknowledge are sent again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

from sluicegate.envelope import new_event_id

__all__ = ["GatewayError", "SluicegateClient"]

_RETRY_STATUS = {429, 502, 503, 504}


class GatewayError(Exception):
    """The gateway refused a request (or retries ran out); ``status`` and ``body`` say why."""

    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else None
        super().__init__(f"HTTP {status}: {message or body}")
        self.status = status
        self.body = body

    @property
    def violations(self) -> list[dict[str, Any]]:
        """Every violation of a rejected event (422), else empty."""
        return list(self.body.get("violations", [])) if isinstance(self.body, dict) else []


def _chunks(items: list[Any], size: int) -> Iterator[tuple[int, list[Any]]]:
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


class SluicegateClient:
    """Posts events with retries, client-side batching and idempotency keys."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 6,
        backoff_s: float = 0.2,
        max_backoff_s: float = 10.0,
        batch_size: int = 500,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.batch_size = batch_size

    def __enter__(self) -> SluicegateClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- retries -------------------------------------------------------------------------
    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            after = response.headers.get("retry-after")
            if after is not None:
                try:
                    return min(self.max_backoff_s, max(0.0, float(after)))
                except ValueError:
                    pass
        base = min(self.max_backoff_s, self.backoff_s * 2.0**attempt)
        return base * random.uniform(0.5, 1.0)  # noqa: S311 - retry jitter, not a secret

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, retried on connection errors and retryable statuses."""
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError:
                if attempt >= self.max_retries:
                    raise
                time.sleep(self._delay(attempt, None))
                attempt += 1
                continue
            if response.status_code not in _RETRY_STATUS or attempt >= self.max_retries:
                return response
            if response.status_code == 503 and _has_results(response):
                return response  # a partly acknowledged batch: the caller retries the rest
            time.sleep(self._delay(attempt, response))
            attempt += 1

    # -- single events -------------------------------------------------------------------
    def post(
        self,
        subject: str,
        event: dict[str, Any],
        *,
        version: int | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """Post one event; returns the gateway's answer (event_id, partition, offset, ...).
        Raises GatewayError when it is refused or retries run out."""
        own = event.get("event_id")
        key = event_id or (own if isinstance(own, str) and own else new_event_id())
        params = {"version": str(version)} if version is not None else None
        response = self._send(
            "POST",
            f"/v1/events/{subject}",
            json=event,
            params=params,
            headers={"Idempotency-Key": key},
        )
        if response.status_code != 202:
            raise GatewayError(response.status_code, _body(response))
        return dict(response.json())

    # -- batches -------------------------------------------------------------------------
    def post_batch(
        self,
        subject: str,
        events: Iterable[dict[str, Any]],
        *,
        version: int | None = None,
        atomic: bool = False,
    ) -> list[dict[str, Any]]:
        """Post events of one subject in batches of ``batch_size``; one result per event,
        in order (``status`` 202 accepted, else the error with its violations)."""
        return self.post_many(
            [
                {"subject": subject, "event": e, **({"version": version} if version else {})}
                for e in events
            ],
            atomic=atomic,
        )

    def post_many(
        self, items: list[dict[str, Any]], *, atomic: bool = False
    ) -> list[dict[str, Any]]:
        """Post ``{"subject", "event", "version"?, "event_id"?}`` items (several subjects)
        in batches; one result per item, in order."""
        prepared = []
        for item in items:
            event = item["event"]
            own = event.get("event_id") if isinstance(event, dict) else None
            event_id = item.get("event_id") or (
                own if isinstance(own, str) and own else new_event_id()
            )
            prepared.append({**item, "event_id": event_id})
        results: list[dict[str, Any]] = []
        for start, chunk in _chunks(prepared, self.batch_size):
            results.extend(
                {**r, "index": start + r["index"]} for r in self._post_chunk(chunk, atomic)
            )
        return results

    def _post_chunk(self, chunk: list[dict[str, Any]], atomic: bool) -> list[dict[str, Any]]:
        done: dict[int, dict[str, Any]] = {}
        todo = list(range(len(chunk)))
        params = {"atomic": "true"} if atomic else None
        attempt = 0
        while True:
            response = self._send(
                "POST", "/v1/events", json=[chunk[i] for i in todo], params=params
            )
            body = _body(response)
            if response.status_code in (202, 207) or (
                response.status_code == 503 and _has_results(response)
            ):
                retry = []
                for result in body["results"]:
                    original = todo[result["index"]]
                    if result["status"] == 503:
                        retry.append(original)
                    else:
                        done[original] = {**result, "index": original}
                todo = retry
                if not todo:
                    return [done[i] for i in range(len(chunk))]
                if attempt >= self.max_retries:
                    raise GatewayError(503, body)
                time.sleep(self._delay(attempt, response))
                attempt += 1
                continue
            raise GatewayError(response.status_code, body)


def _has_results(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("results"), list)


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"message": response.text}
