"""Property-based run of the gateway's OpenAPI with schemathesis against a real serve: no
generated request may get a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from support.gateway_helpers import ORDER_SCHEMA, register
from support.serving import start_server

from sluicegate.app import create_app
from sluicegate.settings import Settings

if TYPE_CHECKING:
    from tests.conftest import Server
    from tests.integration.conftest import Stack

SUBJECT = "fuzz.order"
GATEWAY_PATHS = r"^/v1/(events|rejections)"


@schemathesis.serializer("application/x-ndjson")
def _ndjson(_ctx: object, value: object) -> bytes:
    """NDJSON bodies are described as the array of their lines' documents."""
    if isinstance(value, list):
        return "\n".join(json.dumps(item) for item in value).encode()
    return json.dumps(value).encode()


# The OpenAPI document of the app as `sluicegate serve` builds it (nothing is started).
_openapi = create_app(Settings(data_dir=Path("unused"))).openapi()
schema = schemathesis.openapi.from_dict(_openapi).include(path_regex=GATEWAY_PATHS)


@pytest.fixture(scope="module")
def fuzz_server(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("gw-fuzz") / "sg",
        {"SLUICEGATE_MAX_BODY_BYTES": "100000", "SLUICEGATE_MAX_BATCH_EVENTS": "100"},
    )
    try:
        with srv.client() as admin:
            register(
                admin,
                SUBJECT,
                ORDER_SCHEMA,
                "JSON",
                owner="fuzz",
                entity_key=["order_id"],
                event_time="ts",
            )
        yield srv
    finally:
        srv.stop()


def test_gateway_operations_are_in_the_openapi() -> None:
    paths = set(_openapi["paths"])
    assert {
        "/v1/events/{subject}",
        "/v1/events/{subject}/batch",
        "/v1/events",
        "/v1/rejections/{subject}",
    } <= paths


@schema.parametrize()
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(
    case: schemathesis.Case, fuzz_server: Server, session: requests.Session
) -> None:
    if case.path_parameters and "subject" in case.path_parameters:
        case.path_parameters["subject"] = SUBJECT  # reach validation, not just the 404
    response = case.call(
        base_url=fuzz_server.url,
        session=session,
        headers={"Authorization": f"Bearer {fuzz_server.admin_token}"},
    )
    assert response.status_code < 500, (case.as_curl_command(), response.text)
