"""Client mistakes get their 4xx, never a 5xx: auth, content types, malformed JSON, huge
bodies, deep nesting, wrong types, unknown subjects and versions, size limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import orjson
import pytest
from support.gateway_helpers import ORDER_SCHEMA, create_token, register
from support.serving import start_server

if TYPE_CHECKING:
    from tests.conftest import Server
    from tests.integration.conftest import Stack

MAX_BODY = 200_000
MAX_EVENTS = 50
SUBJECT = "errs.order"
GOOD = {"order_id": "o-1", "ts": "2026-03-01T10:00:00Z", "amount": 1}


@pytest.fixture(scope="module")
def limited(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Server]:
    """A serve with small limits and one registered subject owned by team ``errs``."""
    srv = start_server(
        tmp_path_factory.mktemp("gw-errors") / "sg",
        {
            "SLUICEGATE_MAX_BODY_BYTES": str(MAX_BODY),
            "SLUICEGATE_MAX_BATCH_EVENTS": str(MAX_EVENTS),
        },
    )
    try:
        with srv.client() as admin:
            register(
                admin,
                SUBJECT,
                ORDER_SCHEMA,
                "JSON",
                owner="errs",
                entity_key=["order_id"],
                event_time="ts",
            )
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def admin(limited: Server) -> Iterator[httpx.Client]:
    with limited.client() as client:
        yield client


def test_auth_is_required_and_scoped(limited: Server, admin: httpx.Client) -> None:
    with limited.client("") as anonymous, limited.client("sgt_not-a-token") as wrong:
        assert anonymous.post(f"/v1/events/{SUBJECT}", json=GOOD).status_code == 401
        assert wrong.post(f"/v1/events/{SUBJECT}", json=GOOD).status_code == 401
    with (
        limited.client(create_token(admin, "someone-else")) as other,
        limited.client(create_token(admin, "granted", subjects="errs.*")) as granted,
        limited.client(create_token(admin, "errs")) as owner,
    ):
        r = other.post(f"/v1/events/{SUBJECT}", json=GOOD)
        assert r.status_code == 403
        assert "someone-else" in r.json()["message"]
        assert other.post(f"/v1/events/{SUBJECT}/batch", json=[GOOD]).status_code == 403
        mixed = other.post("/v1/events", json=[{"subject": SUBJECT, "event": GOOD}])
        assert mixed.status_code == 207
        assert mixed.json()["results"][0]["status"] == 403
        assert granted.post(f"/v1/events/{SUBJECT}", json=GOOD).status_code == 202
        assert owner.post(f"/v1/events/{SUBJECT}", json=GOOD).status_code == 202
        assert other.get(f"/v1/rejections/{SUBJECT}").status_code == 403
        assert owner.get(f"/v1/rejections/{SUBJECT}").status_code == 200


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{", "application/json"),
        (b"", "application/json"),
        (b'{"a": NaN}', "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b'{"a":' * 3000 + b"1" + b"}" * 3000, "application/json"),
    ],
    ids=["truncated", "empty", "nan", "binary", "deep-array", "deep-object"],
)
def test_malformed_and_deeply_nested_json_is_a_400(
    admin: httpx.Client, body: bytes, content_type: str
) -> None:
    for path in (f"/v1/events/{SUBJECT}", f"/v1/events/{SUBJECT}/batch", "/v1/events"):
        r = admin.post(path, content=body, headers={"Content-Type": content_type})
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error_code"] == 40002


def test_huge_bodies_and_batches_are_a_413(admin: httpx.Client) -> None:
    huge = b'{"order_id": "' + b"x" * (MAX_BODY + 10) + b'"}'
    for path in (f"/v1/events/{SUBJECT}", f"/v1/events/{SUBJECT}/batch", "/v1/events"):
        r = admin.post(path, content=huge, headers={"Content-Type": "application/json"})
        assert r.status_code == 413, (path, r.text)

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        yield b'{"order_id": "'
        for _ in range(30):
            yield b"y" * 10_000
        yield b'"}'

    r = admin.post(
        f"/v1/events/{SUBJECT}", content=chunked(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    r = admin.post(f"/v1/events/{SUBJECT}/batch", json=[GOOD] * (MAX_EVENTS + 1))
    assert r.status_code == 413
    assert admin.post(f"/v1/events/{SUBJECT}/batch", json=[GOOD] * MAX_EVENTS).status_code == 202


def test_wrong_types_are_a_422_naming_each_field(admin: httpx.Client) -> None:
    r = admin.post(
        f"/v1/events/{SUBJECT}",
        json={"order_id": ["x"], "ts": 5, "amount": "ten", "note": {"a": 1}},
    )
    assert r.status_code == 422
    body = r.json()
    assert body["error_code"] == 42230
    paths = {(v["path"], v["rule"]) for v in body["violations"]}
    assert {
        ("$.order_id", "type"),
        ("$.ts", "type"),
        ("$.amount", "type"),
        ("$.note", "type"),
    } <= paths
    for not_an_object in ([1, 2], "text", 5, None):
        r = admin.post(
            f"/v1/events/{SUBJECT}",
            content=orjson.dumps(not_an_object),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 422, r.text
    r = admin.post(f"/v1/events/{SUBJECT}/batch", json=[GOOD, 1, "x", None, []])
    assert r.status_code == 207
    assert [x["status"] for x in r.json()["results"]] == [202, 422, 422, 422, 422]
    r = admin.post(f"/v1/events/{SUBJECT}/batch", json={"not": "an array"})
    assert r.status_code == 400
    r = admin.post(
        "/v1/events",
        json=[
            {"event": GOOD},
            {"subject": 5, "event": {}},
            {"subject": SUBJECT, "event": GOOD, "version": "one"},
        ],
    )
    assert [x["status"] for x in r.json()["results"]] == [400, 400, 422]


def test_content_type_unknown_subject_and_version(admin: httpx.Client) -> None:
    r = admin.post(
        f"/v1/events/{SUBJECT}",
        content=b"order_id=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    r = admin.post(
        f"/v1/events/{SUBJECT}", content=b"{}\n{}", headers={"Content-Type": "application/x-ndjson"}
    )
    assert r.status_code == 415
    assert admin.post("/v1/events/no.such.subject", json=GOOD).status_code == 404
    assert admin.post("/v1/events/no.such.subject/batch", json=[GOOD]).status_code == 404
    assert admin.post(f"/v1/events/{SUBJECT}?version=9", json=GOOD).status_code == 404
    assert admin.post(f"/v1/events/{SUBJECT}?version=1", json=GOOD).status_code == 202
    assert admin.post(f"/v1/events/{SUBJECT}?version=x", json=GOOD).status_code == 422
    assert admin.post(f"/v1/events/{SUBJECT}/batch?atomic=maybe", json=[GOOD]).status_code == 422
    assert admin.get("/v1/rejections/no.such.subject").status_code == 404
    r = admin.post(f"/v1/events/{SUBJECT}", json=GOOD, headers={"Idempotency-Key": "k" * 201})
    assert r.status_code == 400


def test_readyz_and_metrics(admin: httpx.Client) -> None:
    r = admin.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"kafka": "ok", "registry": "ok"}
    assert admin.post(f"/v1/events/{SUBJECT}", json=GOOD).status_code == 202
    text = admin.get("/metrics").text
    assert f'sluicegate_gateway_events_accepted_total{{subject="{SUBJECT}"}}' in text
    assert 'sluicegate_gateway_request_seconds_bucket{endpoint="single"' in text
    assert "sluicegate_gateway_produce_seconds_count" in text
