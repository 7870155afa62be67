"""The registry's HTTP API on a real `sluicegate serve`: Confluent error bodies and
statuses for bad input, ownership and tokens, /v1 metadata, migrations and upcasting."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.registry_helpers import avro_record
from support.serving import Server, start_server

CT = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
V1 = avro_record(("user_id", "string"))


def _err(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def test_bad_input_gets_confluent_errors(server: Server, unique: str) -> None:
    subject = f"bad-{unique}"
    with server.client() as c:
        ok = c.post(f"/subjects/{subject}/versions", json={"schema": V1}, headers=CT)
        assert ok.status_code == 200
        assert ok.headers["content-type"].startswith("application/vnd.schemaregistry.v1+json")
        _err(c.post(f"/subjects/{subject}/versions", json={"schema": "{not json"}), 422, 42201)
        _err(
            c.post(
                f"/subjects/{subject}/versions",
                json={"schema": json.dumps({"type": "record", "name": "X"})},
            ),
            422,
            42201,
        )
        _err(
            c.post(
                f"/subjects/{subject}/versions", json={"schema": "{}", "schemaType": "PROTOBUF"}
            ),
            422,
            42201,
        )
        _err(c.post(f"/subjects/{subject}/versions", json={"schemaType": "AVRO"}), 422, 42201)
        _err(c.post(f"/subjects/{subject}/versions", content=b"{oops", headers=CT), 400, 40002)
        _err(c.put(f"/config/{subject}", json={"compatibility": "SIDEWAYS"}), 422, 42203)
        _err(c.put("/config", json={"compatibility": "backward_sideways"}), 422, 42203)
        _err(c.get(f"/subjects/{subject}/versions/abc"), 422, 42202)
        _err(c.get(f"/subjects/{subject}/versions/0"), 422, 42202)
        _err(c.get(f"/subjects/{subject}/versions/7"), 404, 40402)
        _err(c.get(f"/subjects/nope-{unique}/versions/1"), 404, 40401)
        _err(c.get("/schemas/ids/987654"), 404, 40403)
        _err(c.get("/schemas/ids/99999999999999999999"), 404, 40403)
        by_id = c.get(f"/schemas/ids/{ok.json()['id']}")
        assert by_id.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
        assert by_id.json() == {
            "schema": c.get(f"/subjects/{subject}/versions/1").json()["schema"],
            "schemaType": "AVRO",
            "references": [],
        }
        _err(c.post(f"/subjects/{subject}", json={"schema": avro_record(("x", "int"))}), 404, 40403)
        _err(c.get(f"/config/{subject}"), 404, 40408)
        _err(c.delete(f"/subjects/{subject}?permanent=TRUE"), 404, 40405)
        _err(c.get(f"/subjects/{subject}/versions?deleted=maybe"), 400, 40001)
        assert c.get(f"/associations/resources/-/{subject}?resourceType=topic").status_code == 404
    with httpx.Client(base_url=server.url) as anon:
        _err(anon.get("/subjects"), 401, 40101)
        _err(anon.get("/schemas/ids/1"), 401, 40101)
        _err(anon.get("/schemas/ids/1", headers={"Authorization": "Bearer nope"}), 401, 40101)
        _err(anon.get("/subjects", headers={"Authorization": "Bearer nope"}), 401, 40101)


def test_oversized_body_is_refused(tmp_path: Path, unique: str, request: Any) -> None:
    srv = start_server(tmp_path / "sg", {"SLUICEGATE_MAX_BODY_BYTES": "4096"})
    try:
        big = avro_record(*[(f"field_{i:04d}_{'x' * 40}", "string") for i in range(200)])
        with srv.client() as c:
            body = _err(
                c.post(f"/subjects/big-{unique}/versions", json={"schema": big}), 413, 41301
            )
            assert "4096" in body["message"]
            assert (
                c.post(f"/subjects/small-{unique}/versions", json={"schema": V1}).status_code == 200
            )
    finally:
        srv.stop()


def test_ownership_tokens_and_basic_auth(server: Server, unique: str) -> None:
    alpha = server.cli("tokens", "create", "--team", "alpha").stdout.strip()
    beta = server.cli("tokens", "create", "--team", "beta").stdout.strip()
    assert alpha.startswith("sgt_")
    assert alpha != beta
    subject = f"alpha.clicks.{unique}"
    basic = base64.b64encode(f"alpha:{alpha}".encode()).decode()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Basic {basic}"}) as a:
        assert a.post(f"/subjects/{subject}/versions", json={"schema": V1}).status_code == 200
        assert a.get(f"/v1/subjects/{subject}/metadata").json()["owner"] == "alpha"
    wrong_team = base64.b64encode(f"beta:{alpha}".encode()).decode()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Basic {wrong_team}"}) as w:
        _err(w.get("/subjects"), 401, 40101)
    v2 = avro_record(("user_id", "string"), ("n", "int", 0))
    with server.client(beta) as b:
        assert subject in b.get("/subjects").json()  # reads are open to every team
        _err(b.post(f"/subjects/{subject}/versions", json={"schema": v2}), 403, 40301)
        _err(b.put(f"/config/{subject}", json={"compatibility": "NONE"}), 403, 40301)
        _err(b.delete(f"/subjects/{subject}"), 403, 40301)
        _err(b.put(f"/v1/subjects/{subject}/metadata", json={"description": "x"}), 403, 40301)
        _err(b.post("/v1/tokens", json={"team": "beta", "admin": True}), 403, 40301)
        _err(b.put("/config", json={"compatibility": "NONE"}), 403, 40301)
    with server.client(alpha) as a:
        assert a.post(f"/subjects/{subject}/versions", json={"schema": v2}).json()["id"] > 0
    with server.client() as admin:
        assert admin.delete(f"/subjects/{subject}/versions/2").json() == 2
    refused = subprocess.run(
        [str(Path(sys.executable).parent / "sluicegate"), "tokens", "create", "--team", "x"],
        env={**server.env, "SLUICEGATE_ADMIN_TOKEN": "not-the-token"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "401" in refused.stderr


def test_metadata_via_confluent_properties_and_v1(server: Server, unique: str) -> None:
    subject = f"shop.order.{unique}"
    schema = avro_record(("order_id", "string"), ("customer", "string"), ("ts", "long"))
    body = {
        "schema": schema,
        "metadata": {
            "properties": {
                "entity_key": "customer",
                "event_time": "ts",
                "description": "orders",
                "tags": "shop,orders",
            }
        },
    }
    with server.client() as c:
        assert c.post(f"/subjects/{subject}/versions", json=body).status_code == 200
        meta = c.get(f"/v1/subjects/{subject}/metadata").json()
        assert meta == {
            "subject": subject,
            "owner": "admin",
            "entity_key": ["customer"],
            "event_time": "ts",
            "description": "orders",
            "tags": ["shop", "orders"],
        }
        put = c.put(
            f"/v1/subjects/{subject}/metadata", json={"owner": "shop", "entity_key": ["order_id"]}
        )
        assert put.status_code == 200
        assert put.json()["owner"] == "shop"
        assert put.json()["event_time"] == "ts"  # left out: unchanged
        bad = _err(
            c.put(f"/v1/subjects/{subject}/metadata", json={"event_time": "nope"}), 422, 42200
        )
        assert "event_time" in bad["message"]
        listing = c.get("/v1/subjects", params={"owner": "shop"}).json()
        assert [s["subject"] for s in listing] == [subject]
        assert listing[0]["latest_version"] == 1
        assert listing[0]["compatibility"] == "BACKWARD"
        assert c.get("/docs").status_code == 200
        paths = c.get("/openapi.json").json()["paths"]
        assert "/subjects/{subject}/versions" in paths
        assert "/v1/subjects/{subject}/metadata" in paths


def test_migration_accepts_refused_change_and_upcasts(server: Server, unique: str) -> None:
    subject = f"acct.signup.{unique}"
    v1 = {
        "type": "object",
        "properties": {
            "user": {"type": "string"},
            "age": {"type": "string", "pattern": "^[0-9]{1,3}$"},
        },
        "required": ["user", "age"],
        "additionalProperties": False,
    }
    v2 = {
        "type": "object",
        "properties": {
            "account": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            },
            "age": {"type": "integer"},
            "adult": {"type": "boolean"},
        },
        "required": ["account", "age", "adult"],
        "additionalProperties": False,
    }
    migration = [
        {"op": "move", "from": "user", "to": "account.name"},
        {"op": "cast", "field": "age", "to": "int"},
        {"op": "derive", "field": "adult", "expr": "age >= 18"},
    ]
    with server.client() as c:
        c.post(
            f"/subjects/{subject}/versions", json={"schema": json.dumps(v1), "schemaType": "JSON"}
        )
        refused = _err(
            c.post(
                f"/subjects/{subject}/versions",
                json={"schema": json.dumps(v2), "schemaType": "JSON"},
            ),
            409,
            40901,
        )
        assert any(m.startswith("/account: REQUIRED_ADDED") for m in refused["messages"])
        assert any(m.startswith("/age: TYPE_NARROWED") for m in refused["messages"])
        broken = _err(
            c.post(
                f"/v1/subjects/{subject}/versions",
                json={
                    "schema": v2,
                    "schemaType": "JSON",
                    "migration": migration[:2],
                },
            ),
            422,
            42210,
        )
        assert "adult" in broken["message"]
        rules = {
            "migrationRules": [
                {
                    "name": "v2",
                    "kind": "TRANSFORM",
                    "mode": "UPGRADE",
                    "type": "SLUICEGATE",
                    "expr": json.dumps(migration),
                }
            ]
        }
        ok = c.post(
            f"/subjects/{subject}/versions",
            json={"schema": json.dumps(v2), "schemaType": "JSON", "ruleSet": rules},
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["migrated"] is True
        assert any("migration" in m for m in ok.json()["messages"])
        up = c.post(
            f"/v1/subjects/{subject}/upcast",
            json={"version": 1, "payload": {"user": "ann", "age": "17"}},
        )
        assert up.json() == {
            "version": 2,
            "payload": {"account": {"name": "ann"}, "age": 17, "adult": False},
        }
        chain = c.get(f"/v1/subjects/{subject}/migrations").json()
        assert chain == [{"version": 1, "migration": None}, {"version": 2, "migration": migration}]


def test_admin_token_file_and_anonymous_read(tmp_path: Path, unique: str, request: Any) -> None:
    srv = start_server(
        tmp_path / "sg", {"SLUICEGATE_ADMIN_TOKEN": "", "SLUICEGATE_ANONYMOUS_READ": "true"}
    )
    try:
        token_file = srv.data_dir / "admin.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert "admin.token" in srv.log.read_text()
        with srv.client(token) as c:
            assert (
                c.post(f"/subjects/anon-{unique}/versions", json={"schema": V1}).status_code == 200
            )
        created = srv.cli("tokens", "create", "--team", "gamma")
        assert created.stdout.strip().startswith("sgt_")
        with httpx.Client(base_url=srv.url) as anon:
            assert f"anon-{unique}" in anon.get("/subjects").json()
            assert anon.get("/schemas/ids/1").status_code == 200
            _err(anon.post(f"/subjects/anon2-{unique}/versions", json={"schema": V1}), 401, 40101)
    finally:
        srv.stop()


@pytest.mark.parametrize("flag", ["True", "true", "TRUE"])
def test_query_booleans_are_case_insensitive(server: Server, unique: str, flag: str) -> None:
    subject = f"flags-{unique}"
    with server.client() as c:
        c.post(f"/subjects/{subject}/versions", json={"schema": V1})
        assert c.delete(f"/subjects/{subject}").json() == [1]
        assert subject in c.get(f"/subjects?deleted={flag}").json()
        assert c.get(f"/subjects/{subject}/versions/1?deleted={flag}").json()["version"] == 1
        assert c.delete(f"/subjects/{subject}?permanent={flag}").json() == [1]
