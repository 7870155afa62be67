"""docker-compose.yml names every service the docs promise, wired with the settings the code reads."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from sluicegate.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_every_documented_service_is_there() -> None:
    assert {"kafka", "connect", "postgres", "clickhouse", "sluicegate"} <= set(SERVICES)


def test_sluicegate_environment_uses_only_real_settings() -> None:
    env = SERVICES["sluicegate"]["environment"]
    fields = set(Settings.model_fields)
    for key in env:
        assert key.startswith("SLUICEGATE_"), key
        assert key.removeprefix("SLUICEGATE_").lower() in fields, f"{key} is not a setting"


def test_sluicegate_points_at_the_compose_services() -> None:
    env = SERVICES["sluicegate"]["environment"]
    kafka_port = SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].rsplit(":", 1)[1]
    assert env["SLUICEGATE_KAFKA_BOOTSTRAP"] == f"kafka:{kafka_port}"
    assert env["SLUICEGATE_CONNECT_URL"] == "http://connect:8083"
    assert "@clickhouse:8123" in env["SLUICEGATE_CLICKHOUSE_URL"]
    assert "@postgres:5432/" in env["SLUICEGATE_REGISTRY_DB_URL"]
    assert SERVICES["connect"]["environment"]["BOOTSTRAP_SERVERS"] == f"kafka:{kafka_port}"
    # the registry's PostgreSQL URL must use a driver the project installs
    assert env["SLUICEGATE_REGISTRY_DB_URL"].startswith("postgresql+psycopg://")


def test_caller_sql_runs_as_a_read_only_user() -> None:
    env = SERVICES["sluicegate"]["environment"]
    read_url = env["SLUICEGATE_CLICKHOUSE_READ_URL"]
    user, password = read_url.split("//", 1)[1].split("@", 1)[0].split(":", 1)
    mounted = [v for v in SERVICES["clickhouse"]["volumes"] if "users.d" in v]
    assert len(mounted) == 1
    users = ET.parse(ROOT / mounted[0].split(":", 1)[0].removeprefix("./")).getroot()  # noqa: S314
    reader = users.find(f"users/{user}")
    assert reader is not None
    grants = [q.text for q in reader.findall("grants/query")]
    assert grants == ["GRANT SELECT ON sluicegate.*"]
    profile = users.find(f"profiles/{reader.findtext('profile')}")
    assert profile is not None and profile.findtext("readonly") == "1"
    assert SERVICES["clickhouse"]["environment"]["SLUICEGATE_READER_PASSWORD"] == password


def test_postgres_has_logical_decoding() -> None:
    assert "wal_level=logical" in SERVICES["postgres"]["command"]


def test_the_image_installs_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("sluicegate", "registry", "gateway", "cdc", "materializer", "migrations"):
        assert f"COPY {package} {package}" in dockerfile
