"""Property-based run of the store, SQL, training-set, registry, dead-letter, CDC, token and
health operations of the OpenAPI document with schemathesis, as a team (not admin),
against a real serve: no generated request may get a 5xx, and every reference in the
document resolves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from support.gateway_helpers import create_token
from support.serving import start_server

from sluicegate.app import create_app
from sluicegate.settings import Settings

if TYPE_CHECKING:
    from tests.conftest import Server
    from tests.integration.conftest import Stack

PATHS = (
    r"^/(v1/(sql|observations|features|training-sets|subjects|dead-letters|cdc|tokens)"
    r"|schemas|config|subjects|compatibility|mode|healthz|readyz|metrics)"
)

_openapi = create_app(Settings(data_dir=Path("unused"))).openapi()
schema = schemathesis.openapi.from_dict(_openapi).include(path_regex=PATHS)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_reference_resolves() -> None:
    refs = set(_refs(_openapi))
    assert refs, "the document has references"
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = _openapi
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
            node = node[part]


@pytest.fixture(scope="module")
def team_server(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[tuple[Server, str]]:
    srv = start_server(
        tmp_path_factory.mktemp("api-fuzz") / "sg", {"SLUICEGATE_MAX_BODY_BYTES": "100000"}
    )
    try:
        with srv.client() as admin:
            token = create_token(admin, "fuzzers")
        yield srv, token
    finally:
        srv.stop()


@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(
    case: schemathesis.Case, team_server: tuple[Server, str], session: requests.Session
) -> None:
    server, token = team_server
    response = case.call(
        base_url=server.url, session=session, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
