"""Schema governance of a captured table against a real (SQLite) registry: versions follow
the table's shape; a refused change holds the table until the owner resolves it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import cdc._govern
from cdc import COMMIT_TIME_FIELD, TableGovernor, TableHeld, parse_config
from cdc._catalog import TableInfo
from cdc._shape import CatalogColumn
from registry import Compatibility, Principal, Registry

ROW = {"id": 1, "name": "a", "qty": 2}


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(f"sqlite:///{tmp_path / 'registry.db'}")
    yield reg
    reg.close()


class Catalog:
    """The table as the catalog would describe it; tests change it like DDL would."""

    def __init__(self) -> None:
        self.columns = [
            CatalogColumn("id", "int4", "integer", False),
            CatalogColumn("name", "text", "string", False),
            CatalogColumn("qty", "int4", "integer", True),
        ]

    def describe(self) -> TableInfo:
        return TableInfo("public", "t", tuple(self.columns), ("id",), "f", "cdc")


def _governor(registry: Registry, catalog: Catalog, **table: object) -> TableGovernor:
    cfg = parse_config(
        {
            "name": "shop",
            "team": "checkout",
            "connection": {"host": "h", "dbname": "d", "user": "u"},
            "tables": [{"name": "t", **table}],
        }
    )
    gov = TableGovernor(cfg, cfg.tables[0], registry, catalog.describe)
    assert gov.status()["state"] == "starting"  # until its bridge read the committed offsets
    gov.started = True
    return gov


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cdc._govern, "RETRY_INTERVAL_S", 0.0)
    monkeypatch.setattr(cdc._govern, "DESCRIBE_INTERVAL_S", 0.0)


def test_first_row_registers_version_1_with_metadata(registry: Registry) -> None:
    gov = _governor(registry, Catalog())
    schema = gov.schema_for(ROW, ["id"])
    assert (schema.subject, schema.version) == ("cdc.shop.t", 1)
    meta = registry.metadata("cdc.shop.t")
    assert meta.owner == "checkout"
    assert meta.entity_key == ["id"]
    assert meta.event_time == COMMIT_TIME_FIELD
    assert gov.schema_for({"id": 2, "name": "b", "qty": None}, ["id"]) == schema


def test_added_nullable_column_registers_version_2(registry: Registry) -> None:
    catalog = Catalog()
    gov = _governor(registry, catalog)
    gov.schema_for(ROW, ["id"])
    catalog.columns.append(CatalogColumn("note", "text", "string", True))
    v2 = gov.schema_for({**ROW, "note": "x"}, ["id"])
    assert v2.version == 2
    assert v2.parsed["properties"]["note"] == {"type": ["string", "null"]}
    # a row of the old shape still in flight is written with version 1
    assert gov.schema_for(ROW, ["id"]).version == 1


def test_level_from_config_is_set_on_the_new_subject(registry: Registry) -> None:
    gov = _governor(registry, Catalog(), compatibility="FORWARD")
    gov.schema_for(ROW, ["id"])
    assert registry.compatibility("cdc.shop.t") is Compatibility.FORWARD


def test_refused_change_holds_until_the_level_is_relaxed(registry: Registry) -> None:
    catalog = Catalog()
    gov = _governor(registry, catalog, compatibility="FORWARD")
    gov.schema_for(ROW, ["id"])
    catalog.columns = [c for c in catalog.columns if c.name != "name"]  # DROP COLUMN name
    dropped = {"id": 3, "qty": 1}
    with pytest.raises(TableHeld):
        gov.schema_for(dropped, ["id"])
    st = gov.status()
    assert st["state"] == "stopped"
    assert "FORWARD" in st["error"] and "name" in st["error"]
    assert st["pending_schema"] and '"name"' not in st["pending_schema"]
    with pytest.raises(TableHeld):  # every later row is held too
        gov.schema_for({"id": 4, "qty": 2}, ["id"])
    assert gov.try_release() is False  # nothing changed yet
    registry.set_subject_compatibility(
        "cdc.shop.t", Compatibility.NONE, principal=Principal("checkout")
    )
    assert gov.try_release() is True
    assert gov.status()["state"] == "running" and gov.status()["error"] is None
    assert gov.schema_for(dropped, ["id"]).version == 2


def test_owner_registering_the_version_with_a_migration_releases(registry: Registry) -> None:
    catalog = Catalog()
    gov = _governor(registry, catalog)  # BACKWARD: dropping a column is refused (closed schema)
    gov.schema_for(ROW, ["id"])
    catalog.columns = [c for c in catalog.columns if c.name != "qty"]
    with pytest.raises(TableHeld):
        gov.schema_for({"id": 5, "name": "e"}, ["id"])
    from registry import SchemaType

    registry.register(
        "cdc.shop.t",
        gov.status()["pending_schema"],
        SchemaType.JSON,
        principal=Principal("checkout"),
        migration=[{"op": "drop", "field": "qty"}],
    )
    assert gov.try_release() is True
    assert gov.schema_for({"id": 5, "name": "e"}, ["id"]).version == 2


def test_migrate_policy_registers_with_a_generated_rule(registry: Registry) -> None:
    catalog = Catalog()
    gov = _governor(registry, catalog, on_incompatible="migrate")
    gov.schema_for(ROW, ["id"])
    catalog.columns = [c for c in catalog.columns if c.name != "qty"]
    v2 = gov.schema_for({"id": 6, "name": "f"}, ["id"])
    assert v2.version == 2
    assert registry.migration("cdc.shop.t", 2) == [{"op": "drop", "field": "qty"}]
    assert registry.upcast("cdc.shop.t", 1, {**ROW, COMMIT_TIME_FIELD: "x"}) == (
        2,
        {"id": 1, "name": "a", COMMIT_TIME_FIELD: "x"},
    )


def test_migrate_policy_holds_when_no_faithful_rule_exists(registry: Registry) -> None:
    catalog = Catalog()
    gov = _governor(registry, catalog, on_incompatible="migrate")
    gov.schema_for(ROW, ["id"])
    catalog.columns.append(CatalogColumn("must", "int4", "integer", False))  # NOT NULL, no default
    with pytest.raises(TableHeld):
        gov.schema_for({**ROW, "must": 1}, ["id"])
    assert "NOT NULL without a constant default" in gov.status()["error"]


def test_subject_owned_by_another_team_holds(registry: Registry) -> None:
    from registry import SchemaType

    registry.register(
        "cdc.shop.t", '{"type": "object"}', SchemaType.JSON, principal=Principal("someone-else")
    )
    gov = _governor(registry, Catalog())
    with pytest.raises(TableHeld):
        gov.schema_for(ROW, ["id"])
    assert "owned by team 'someone-else'" in gov.status()["error"]
