"""The Python client: retries with backoff honouring Retry-After, idempotency keys that
stay the same across retries, batching, and partial retries of a batch."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from gateway import SluicegateClient
from gateway.client import GatewayError


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("gateway.client.time.sleep", slept.append)
    return slept


def client(handler: Any, **kwargs: Any) -> SluicegateClient:
    return SluicegateClient("http://gw", "tok", transport=httpx.MockTransport(handler), **kwargs)


def test_post_retries_503_with_the_same_idempotency_key(sleeps: list[float]) -> None:
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["idempotency-key"])
        assert request.headers["authorization"] == "Bearer tok"
        if len(keys) < 3:
            return httpx.Response(503, headers={"Retry-After": "2"}, json={"message": "down"})
        return httpx.Response(202, json={"event_id": keys[-1], "offset": 5})

    with client(handler) as sg:
        result = sg.post("shop.order", {"order_id": "o"})
    assert len(set(keys)) == 1
    assert result["event_id"] == keys[0]
    assert sleeps == [2.0, 2.0]


def test_post_retries_connection_errors_then_gives_up(sleeps: list[float]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with client(handler, max_retries=3) as sg, pytest.raises(httpx.ConnectError):
        sg.post("shop.order", {"order_id": "o"})
    assert len(sleeps) == 3
    assert sleeps == sorted(sleeps)  # exponential backoff


def test_rejection_is_raised_with_violations(sleeps: list[float]) -> None:
    body = {"error_code": 42230, "message": "bad", "violations": [{"path": "$.a", "rule": "type"}]}
    with (
        client(lambda r: httpx.Response(422, json=body)) as sg,
        pytest.raises(GatewayError) as info,
    ):
        sg.post("shop.order", {"event_id": "mine"})
    assert info.value.status == 422
    assert info.value.violations == body["violations"]
    assert sleeps == []


def test_batch_is_chunked_and_only_unacknowledged_items_are_resent(sleeps: list[float]) -> None:
    sent: list[list[dict[str, Any]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        items = orjson.loads(request.content)
        sent.append(items)
        results = []
        for i, item in enumerate(items):
            down = len(sent) == 1 and i == 1
            results.append(
                {"index": i, "status": 503 if down else 202, "event_id": item["event_id"]}
            )
        status = 503 if any(r["status"] == 503 for r in results) else 202
        return httpx.Response(status, json={"results": results})

    events = [{"order_id": f"o{i}"} for i in range(5)]
    with client(handler, batch_size=3) as sg:
        results = sg.post_batch("shop.order", events)
    assert [r["status"] for r in results] == [202] * 5
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [len(s) for s in sent] == [3, 1, 2]
    assert sent[1][0]["event_id"] == sent[0][1]["event_id"]  # same id on the retry
    assert all(item["subject"] == "shop.order" for batch in sent for item in batch)
