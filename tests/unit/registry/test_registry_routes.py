"""The registry routes in process (no server): Confluent shapes and error codes, body
limits, query booleans, the schema-by-id fast path and the /v1 endpoints."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from registry_samples import ADMIN_TOKEN, avro

from registry import Registry
from registry import http as registry_http
from sluicegate.errors import SluicegateError
from sluicegate.settings import Settings
from sluicegate.state import AppState

MEDIA = "application/vnd.schemaregistry.v1+json"


def build_app(reg: Registry, *, max_body: int = 1 << 20) -> FastAPI:
    app = FastAPI()
    app.state.sluicegate = AppState(
        settings=Settings(max_body_bytes=max_body), registry=reg, metrics=CollectorRegistry()
    )

    @app.exception_handler(SluicegateError)
    async def _handle(_: Request, exc: SluicegateError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    for router in registry_http.routers:
        app.include_router(router)
    app.add_middleware(registry_http.SchemaLookupFastPath)
    return app


@pytest.fixture
def client(reg: Registry) -> Iterator[TestClient]:
    with TestClient(build_app(reg), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as c:
        yield c


def test_register_and_read_shapes(client: TestClient) -> None:
    r = client.post(
        "/subjects/s1/versions",
        json={"schema": avro(("a", "int"))},
        headers={"Content-Type": MEDIA},
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == MEDIA
    assert r.json() == {"id": 1, "version": 1}
    latest = client.get("/subjects/s1/versions/latest").json()
    assert latest == {
        "subject": "s1",
        "version": 1,
        "id": 1,
        "schemaType": "AVRO",
        "schema": latest["schema"],
    }
    assert json.loads(client.get("/subjects/s1/versions/-1/schema").text)["name"] == "Event"
    assert client.get("/schemas/ids/1").json() == {
        "schema": latest["schema"],
        "schemaType": "AVRO",
        "references": [],
    }
    assert client.get("/schemas/ids/1/versions").json() == [{"subject": "s1", "version": 1}]
    assert client.get("/schemas/ids/1/subjects").json() == ["s1"]
    assert client.get("/schemas/types").json() == ["JSON", "AVRO"]
    assert client.get("/schemas?latestOnly=true").json()[0]["subject"] == "s1"
    assert client.get("/subjects/s1/versions/1/referencedby").json() == []
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert client.get("/config/s1?defaultToGlobal=TRUE").json() == {
        "compatibilityLevel": "BACKWARD"
    }
    assert client.put("/config/s1", json={"compatibility": "full"}).json() == {
        "compatibility": "FULL"
    }
    assert client.delete("/config/s1").json() == {"compatibilityLevel": "FULL"}
    assert client.get("/mode").json() == {"mode": "READWRITE"}
    assert client.put("/mode", json={"mode": "READWRITE"}).json() == {"mode": "READWRITE"}
    assert client.put("/mode", json={"mode": "IMPORT"}).status_code == 422


def test_compatibility_endpoint_lists_paths(client: TestClient) -> None:
    client.post("/subjects/s2/versions", json={"schema": avro(("a", "int"))})
    body = {"schema": avro(("a", "string"), ("b", "int"))}
    r = client.post("/compatibility/subjects/s2/versions/latest?verbose=True", json=body)
    assert r.json()["is_compatible"] is False
    assert [m.split(":")[0] for m in r.json()["messages"]] == ["/a", "/b"]
    ok = client.post(
        "/compatibility/subjects/s2/versions?verbose=false", json={"schema": avro(("a", "long"))}
    )
    assert ok.json() == {"is_compatible": True}
    assert (
        client.post("/compatibility/subjects/s2/versions/9", json=body).json()["error_code"]
        == 40402
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("get", "/subjects/none/versions", None, 404, 40401),
        ("get", "/subjects/none/versions/latest", None, 404, 40401),
        ("get", "/subjects/s/versions/x", None, 422, 42202),
        ("get", "/subjects/s/versions/2147483648", None, 422, 42202),
        ("get", "/schemas/ids/42", None, 404, 40403),
        ("get", "/config/none", None, 404, 40408),
        ("delete", "/config/none", None, 404, 40408),
        ("put", "/config", {"compatibility": "MAYBE"}, 422, 42203),
        ("put", "/config", {"level": "FULL"}, 422, 42200),
        ("post", "/subjects/s/versions", {"schema": "{", "schemaType": "AVRO"}, 422, 42201),
        ("post", "/subjects/s/versions", {"schema": "{}", "schemaType": "XML"}, 422, 42201),
        ("post", "/subjects/s/versions", {"schema": 5}, 422, 42201),
        (
            "post",
            "/subjects/s/versions",
            {"schema": '"int"', "references": [{"name": "x", "subject": "y", "version": 1}]},
            422,
            42201,
        ),
        ("post", "/subjects/bad subject/versions", {"schema": '"int"'}, 422, 42200),
        ("post", "/subjects/s/versions", [], 422, 42201),
        ("delete", "/subjects/none", None, 404, 40401),
        ("get", "/associations/resources/-/t", None, 404, 40400),
        ("get", "/subjects?deleted=perhaps", None, 400, 40001),
    ],
)
def test_errors(
    client: TestClient, method: str, path: str, body: object, status: int, code: int
) -> None:
    r = (
        client.request(method, path, json=body)
        if body is not None
        else client.request(method, path)
    )
    assert r.status_code == status, r.text
    assert r.json()["error_code"] == code
    assert r.json()["message"]


def test_malformed_and_oversized_bodies(reg: Registry) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with TestClient(build_app(reg, max_body=100), headers=headers) as c:
        assert c.post("/subjects/s/versions", content=b"{nope").json()["error_code"] == 40002
        assert c.post("/subjects/s/versions", content=b"").json()["error_code"] == 40002
        big = c.post(
            "/subjects/s/versions", json={"schema": avro(*[(f"f{i}", "int") for i in range(20)])}
        )
        assert (big.status_code, big.json()["error_code"]) == (413, 41301)


def test_auth(reg: Registry) -> None:
    token = reg.create_token("team")
    with TestClient(build_app(reg)) as c:
        assert c.get("/subjects").status_code == 401
        assert c.get("/schemas/ids/1").status_code == 401
        assert c.get("/subjects", headers={"Authorization": "Bearer bad"}).status_code == 401
        basic = base64.b64encode(f"team:{token}".encode()).decode()
        assert c.get("/subjects", headers={"Authorization": f"Basic {basic}"}).json() == []
        assert (
            c.post(
                "/v1/tokens", json={"team": "x"}, headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 403
        )
        made = c.post(
            "/v1/tokens",
            json={"team": "x", "subjects": "x.*"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert made.status_code == 201
        assert reg.authenticate(f"Bearer {made.json()['token']}").subjects == "x.*"
    reg.anonymous_read = True
    with TestClient(build_app(reg)) as c:
        assert c.get("/subjects").json() == []
        assert c.post("/subjects/a/versions", json={"schema": '"int"'}).status_code == 401


def test_v1_endpoints(client: TestClient) -> None:
    schema = {"type": "object", "properties": {"k": {"type": "string"}, "t": {"type": "string"}}}
    r = client.post(
        "/v1/subjects/v.one/versions",
        json={
            "schema": schema,
            "schemaType": "JSON",
            "metadata": {"entity_key": ["k"], "event_time": "t", "tags": ["a"]},
        },
    )
    assert r.status_code == 201
    assert r.json() == {"id": 1, "version": 1, "created": True, "migrated": False, "messages": []}
    again = client.post(
        "/v1/subjects/v.one/versions", json={"schema": schema, "schemaType": "JSON"}
    )
    assert (again.status_code, again.json()["created"]) == (200, False)
    summary = client.get("/v1/subjects/v.one").json()
    assert summary["entity_key"] == ["k"]
    assert summary["schema_type"] == "JSON"
    assert client.get("/v1/subjects?owner=nobody").json() == []
    assert client.put("/v1/subjects/v.one/metadata", json={"tags": None}).json()["tags"] == []
    assert client.put("/v1/subjects/v.one/metadata", json={"colour": "red"}).status_code == 422
    assert client.get("/v1/subjects/v.one/versions/latest/migration").json() == {
        "version": 1,
        "migration": None,
    }
    assert client.post(
        "/v1/subjects/v.one/upcast", json={"version": 1, "payload": {"k": "x"}}
    ).json() == {"version": 1, "payload": {"k": "x"}}
    assert client.get("/v1/subjects/none").status_code == 404
    assert client.get("/openapi.json").status_code == 200
