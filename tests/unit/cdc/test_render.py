"""The rendered Debezium connector config."""

from __future__ import annotations

import re

from cdc import parse_config, render_connector_config
from cdc._render import mask_secrets


def _cfg(**extra: object) -> object:
    doc = {
        "name": "shop",
        "team": "checkout",
        "connection": {
            "host": "db",
            "port": 5433,
            "dbname": "app",
            "user": "cdc",
            "password_env": "PW",
        },
        "tables": [
            {"name": "orders", "exclude_columns": ["email", "phone"]},
            {"name": "audit.log", "key_columns": ["event_id", "seq"]},
        ],
        **extra,
    }
    return parse_config(doc)


def test_fixed_choices() -> None:
    c = render_connector_config(_cfg(), password="pw")  # type: ignore[arg-type]
    assert c["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert c["plugin.name"] == "pgoutput"
    assert c["publication.autocreate.mode"] == "filtered"
    assert c["decimal.handling.mode"] == "string"
    assert c["time.precision.mode"] == "isostring"
    assert c["skipped.operations"] == "none"
    assert c["heartbeat.interval.ms"] == "10000"
    assert c["slot.name"] == c["publication.name"] == "sluicegate_shop"
    assert c["topic.prefix"] == "cdcraw.shop"
    assert c["database.hostname"] == "db" and c["database.port"] == "5433"
    assert c["database.password"] == "pw"
    # bulk changes in large polls and compressed producer batches
    assert c["max.batch.size"] == "8192" and c["max.queue.size"] == "32768"
    assert c["producer.override.linger.ms"] == "20"
    assert c["producer.override.compression.type"] == "lz4"
    assert all(isinstance(v, str) for v in c.values())


def test_table_lists_are_escaped_regexes() -> None:
    c = render_connector_config(_cfg(), password=None)  # type: ignore[arg-type]
    include = c["table.include.list"].split(",")
    assert include == [r"public\.orders", r"audit\.log"]
    assert all(re.fullmatch(p, "public.orders") for p in include[:1])
    assert not re.fullmatch(include[0], "publicXorders")
    assert c["column.exclude.list"] == r"public\.orders\.email,public\.orders\.phone"
    assert c["message.key.columns"] == r"audit\.log:event_id,seq"
    assert c["replica.identity.autoset.values"] == r"public\.orders:FULL,audit\.log:FULL"
    assert "database.password" not in c


def test_options_follow_the_config() -> None:
    c = render_connector_config(
        _cfg(
            snapshot_mode="no_data",
            heartbeat_interval_ms=5000,
            replica_identity_full=False,
            slot_name="my_slot",
            max_batch_size=1024,
        ),  # type: ignore[arg-type]
        password=None,
    )
    assert c["snapshot.mode"] == "no_data"
    assert c["max.batch.size"] == "1024" and c["max.queue.size"] == "4096"
    assert c["heartbeat.interval.ms"] == "5000"
    assert "replica.identity.autoset.values" not in c
    assert c["slot.name"] == "my_slot"


def test_mask_secrets() -> None:
    c = render_connector_config(_cfg(), password="pw")  # type: ignore[arg-type]
    assert mask_secrets(c)["database.password"] == "********"
    assert mask_secrets(c)["database.user"] == "cdc"
