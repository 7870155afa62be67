"""The reference docs stay in step with the code."""

from __future__ import annotations

from pathlib import Path

from sluicegate import apidoc
from sluicegate.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_api_reference_is_generated_from_the_current_openapi() -> None:
    expected = apidoc.markdown(apidoc.openapi())
    assert (ROOT / "docs" / "api.md").read_text() == expected, (
        "docs/api.md is stale: run `sluicegate openapi --format markdown > docs/api.md`"
    )


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"`SLUICEGATE_{name.upper()}`" in text, name


def test_the_api_serves_every_promised_path() -> None:
    paths = set(apidoc.openapi()["paths"])
    promised = {
        "/subjects",
        "/schemas/ids/{schema_id}",
        "/config",
        "/config/{subject}",
        "/v1/subjects/{subject}/metadata",
        "/v1/events/{subject}",
        "/v1/events/{subject}/batch",
        "/v1/events",
        "/v1/rejections/{subject}",
        "/v1/observations",
        "/v1/features/{entity_type}/{key}",
        "/v1/features",
        "/v1/training-sets",
        "/v1/sql",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    assert promised <= paths, promised - paths
