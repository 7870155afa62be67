"""A materializer in its own process, driven over stdin/stdout (one JSON command per line),
for tests that must act on the store from inside the process that owns it: make the
target table disappear and come back (a real ClickHouse failure), or count physical rows
(``final = 0``), which the read-only /v1/sql cannot.

Run: python mz_harness.py DATA_DIR KAFKA_BOOTSTRAP
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from materializer.loader import (
    ClickHouseSink,
    LoaderMetrics,
    Materializer,
    MaterializerConfig,
    group_id,
)
from materializer.loader._batch import EVENT_COLUMNS, Batch, EventColumns, Plan
from migrations import apply_clickhouse_migrations, clickhouse_migrations
from registry import Principal, Registry, SchemaType
from sluicegate.clickhouse import connect


class _DiesBeforeRecordingIds(ClickHouseSink):
    """A sink whose process dies after inserting a load's events, before their ids."""

    def _record_ids(self, batch: Batch) -> None:
        return None


def main() -> None:
    data_dir, bootstrap = Path(sys.argv[1]), sys.argv[2]
    data_dir.mkdir(parents=True, exist_ok=True)
    registry = Registry.open(f"sqlite:///{data_dir / 'registry.db'}")
    client = connect(None, data_dir)
    apply_clickhouse_migrations(client)
    admin = Principal("admin", admin=True)
    loaders: list[Materializer] = []
    metrics: list[CollectorRegistry] = []

    def handle(cmd: dict[str, Any]) -> Any:
        op = cmd["op"]
        if op == "register":
            result = registry.register(
                cmd["subject"], cmd["schema"], SchemaType(cmd["type"]), principal=admin
            )
            return {"id": result.id, "version": result.version}
        if op == "start":  # loads only the given topics: the shared broker holds others'
            config = MaterializerConfig(
                kafka_bootstrap=bootstrap,
                group_id=group_id(client),
                retry_max_s=1.0,
                subscription=cmd["topic"],
            )
            metrics.append(CollectorRegistry())
            loaders.append(
                Materializer(
                    config,
                    ClickHouseSink(connect(None, data_dir)),
                    registry,
                    LoaderMetrics(metrics[0]),
                )
            )
            loaders[0].start()
            return True
        if op == "sql":
            return [list(r) for r in client.query(cmd["query"]).result_rows]
        if op == "command":
            client.command(cmd["sql"])
            return True
        if op == "status":
            errors = metrics[0].get_sample_value("sluicegate_materializer_store_errors_total")
            return {
                "blocked": loaders[0].blocked,
                "running": loaders[0].running,
                "store_errors": int(errors or 0),
            }
        if op == "replay":
            # one load whose events land but whose ids are never recorded (the process
            # dies between the two inserts), then the same load replayed with its plan:
            # the id check finds nothing, so only ClickHouse's token can drop it
            store = connect(None, data_dir)
            plan = Plan.for_range(cmd["topic"], 0, 0, len(cmd["rows"]) - 1)
            for sink, planned in (
                (_DiesBeforeRecordingIds(store), False),
                (ClickHouseSink(store), True),
            ):
                events = EventColumns()
                for row in cmd["rows"]:  # entity_key and payload travel as bytes
                    events.append(
                        tuple(
                            v.encode() if c in ("entity_key", "payload") else v
                            for c, v in zip(EVENT_COLUMNS, row, strict=True)
                        )
                    )
                sink.write([Batch(plan, events, [], planned)])
            return True
        if op == "migrate":
            found = clickhouse_migrations(Path(cmd["dir"]))
            return apply_clickhouse_migrations(client, found)
        if op == "stop":
            for loader in loaders:
                loader.stop()
            return True
        raise ValueError(f"unknown op {op!r}")

    print(orjson.dumps({"ok": True}).decode(), flush=True)
    for line in sys.stdin:
        cmd = orjson.loads(line)
        try:
            reply = {"ok": True, "result": handle(cmd)}
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        print(orjson.dumps(reply).decode(), flush=True)
        if cmd["op"] == "stop":
            break
    registry.close()


if __name__ == "__main__":
    main()
