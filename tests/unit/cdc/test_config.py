"""Database config validation: every mistake is refused with the field named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import cdc
from cdc import load_config, load_configs, parse_config, resolve_config
from sluicegate.errors import InvalidCdcConfig

ROOT = Path(__file__).resolve().parents[3]


def _doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "shop",
        "team": "checkout",
        "connection": {
            "host": "127.0.0.1",
            "port": 5432,
            "dbname": "app",
            "user": "cdc",
            "password_env": "SHOP_PW",
        },
        "tables": [{"name": "orders"}],
    }
    doc.update(overrides)
    return doc


def _paths(exc: pytest.ExceptionInfo[InvalidCdcConfig]) -> list[str]:
    return [v["path"] for v in exc.value.details["violations"]]


def test_minimal_config_gets_defaults() -> None:
    cfg = parse_config(_doc())
    assert cfg.tables[0].name == "public.orders"
    assert cfg.snapshot_mode == "initial"
    assert cfg.on_incompatible is cdc.IncompatiblePolicy.STOP
    assert cfg.subject_of(cfg.tables[0]) == "cdc.shop.orders"
    assert cfg.connector_name == "sluicegate-shop"
    assert cfg.slot == cfg.publication == "sluicegate_shop"
    assert cfg.raw_topic(cfg.tables[0]) == "cdcraw.shop.public.orders"
    assert not cfg.raw_topic(cfg.tables[0]).startswith("sg.")


def test_non_public_schema_keeps_schema_in_subject() -> None:
    cfg = parse_config(_doc(tables=[{"name": "billing.invoices"}]))
    assert cfg.subject_of(cfg.tables[0]) == "cdc.shop.billing.invoices"


def test_example_configs_are_valid() -> None:
    configs = load_configs(ROOT / "cdc" / "databases")
    assert configs, "cdc/databases holds at least one example"
    shop = next(c for c in configs if c.name == "shop")
    assert shop.table("public.order_events").key_columns == ["order_id", "seq"]
    assert shop.subject_of(shop.table("billing.invoices")) == "billing.invoice"


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"name": "Shop-1"}, "name"),
        ({"team": ""}, "team"),
        ({"tables": []}, "tables"),
        ({"snapshot_mode": "sometimes"}, "snapshot_mode"),
        ({"compatibility": "SIDEWAYS"}, "compatibility"),
        ({"on_incompatible": "ignore"}, "on_incompatible"),
        ({"tables": [{"name": "a.b.c"}]}, "tables.0.name"),
        ({"tables": [{"name": "orders", "key_columns": ["bad name"]}]}, "tables.0.key_columns.0"),
        ({"tables": [{"name": "orders", "subject": "no spaces"}]}, "tables.0.subject"),
        ({"tables": [{"name": "orders", "colour": "red"}]}, "tables.0.colour"),
        ({"heartbeat_interval_ms": 10}, "heartbeat_interval_ms"),
        ({"max_batch_size": 100}, "max_batch_size"),
        ({"max_batch_size": 100_000}, "max_batch_size"),
        ({"password": "hunter2"}, "password"),
    ],
)
def test_violations_name_the_field(overrides: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidCdcConfig) as exc:
        parse_config(_doc(**overrides))
    assert path in _paths(exc)
    assert path in exc.value.message


def test_password_never_in_the_file() -> None:
    doc = _doc()
    doc["connection"] = {**doc["connection"], "password": "hunter2"}
    with pytest.raises(InvalidCdcConfig) as exc:
        parse_config(doc)
    assert _paths(exc) == ["connection.password"]
    assert "unknown key" in exc.value.message


def test_connection_port_range() -> None:
    doc = _doc()
    doc["connection"] = {**doc["connection"], "port": 70000}
    with pytest.raises(InvalidCdcConfig) as exc:
        parse_config(doc)
    assert _paths(exc) == ["connection.port"]


def test_key_column_cannot_be_excluded() -> None:
    with pytest.raises(InvalidCdcConfig) as exc:
        parse_config(_doc(tables=[{"name": "t", "key_columns": ["id"], "exclude_columns": ["id"]}]))
    assert "key columns cannot be excluded: id" in exc.value.message


def test_duplicate_tables_and_subjects_refused() -> None:
    with pytest.raises(InvalidCdcConfig, match="listed twice"):
        parse_config(_doc(tables=[{"name": "orders"}, {"name": "public.orders"}]))
    with pytest.raises(InvalidCdcConfig, match="same subject"):
        parse_config(
            _doc(tables=[{"name": "a", "subject": "x.y"}, {"name": "b", "subject": "x.y"}])
        )


def test_password_from_named_variable() -> None:
    cfg = parse_config(_doc())
    assert cfg.password({"SHOP_PW": "s3cret"}) == "s3cret"
    with pytest.raises(InvalidCdcConfig) as exc:
        cfg.password({})
    assert exc.value.message == (
        "shop: connection.password_env: environment variable SHOP_PW is not set"
    )


def test_not_a_mapping_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(InvalidCdcConfig, match="must be a mapping"):
        parse_config(["a"])
    bad = tmp_path / "x.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(InvalidCdcConfig, match="not valid YAML"):
        load_config(bad)


def test_resolve_by_name_or_path(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "one.yaml").write_text(yaml.safe_dump(_doc(name="one")))
    (tmp_path / "two.yml").write_text(yaml.safe_dump(_doc(name="two")))
    assert resolve_config("two", tmp_path).name == "two"
    assert resolve_config(str(tmp_path / "one.yaml"), None).name == "one"
    with pytest.raises(InvalidCdcConfig, match="no database config named 'three'"):
        resolve_config("three", tmp_path)
    (tmp_path / "dupe.yaml").write_text(yaml.safe_dump(_doc(name="one")))
    with pytest.raises(InvalidCdcConfig, match="also used by"):
        load_configs(tmp_path)
