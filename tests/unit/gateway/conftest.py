"""Unit-tier fixtures of the gateway: a real registry on SQLite (in-process) and an
in-memory stand-in for the Kafka sink (the integration tier uses the real broker)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from gateway_fixtures import CLICK_AVRO, ORDER_SCHEMA, FakeSink
from prometheus_client import CollectorRegistry

from gateway import Gateway
from gateway._metrics import GatewayMetrics
from registry import Principal, Registry, SchemaType, SubjectMetadata

ADMIN = Principal("admin", admin=True)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    path: Path = tmp_path_factory.mktemp("registry") / "registry.db"
    reg = Registry.open(f"sqlite:///{path}", admin_token="admin-token")
    reg.register(
        "shop.order",
        orjson.dumps(ORDER_SCHEMA).decode(),
        SchemaType.JSON,
        principal=ADMIN,
        metadata=SubjectMetadata(
            "shop.order", owner="shop", entity_key=["order_id"], event_time="ts"
        ),
    )
    reg.register(
        "web.click",
        orjson.dumps(CLICK_AVRO).decode(),
        SchemaType.AVRO,
        principal=ADMIN,
        metadata=SubjectMetadata("web.click", owner="web", entity_key=["user"], event_time="at"),
    )
    yield reg
    reg.close()


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
def gateway(registry: Registry, sink: FakeSink) -> Gateway:
    return Gateway(lambda: registry, sink, GatewayMetrics(CollectorRegistry()))  # type: ignore[arg-type]
