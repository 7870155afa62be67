"""``sluicegate cdc``: apply database configs as Debezium connectors and operate them.

Connectors are driven through Kafka Connect's REST API (``SLUICEGATE_CONNECT_URL``); the
bridge's side of `status` comes from the running `sluicegate serve` (``/v1/cdc``)."""

from __future__ import annotations

import os
from typing import Annotated, Any

import httpx
import typer

from cdc._bridge import create_raw_topics
from cdc._catalog import (
    drop_publication,
    drop_slot,
    ensure_full_replica_identity,
    open_source,
    preflight,
    slot_info,
)
from cdc._config import DatabaseConfig, load_configs, resolve_config
from cdc._connect import ConnectClient
from cdc._render import render_connector_config
from sluicegate.errors import SluicegateError
from sluicegate.serveapi import auth_headers
from sluicegate.settings import Settings

__all__ = ["cdc_app"]

cdc_app = typer.Typer(
    name="cdc",
    help="Change data capture: one Debezium connector per database config "
    "(SLUICEGATE_CDC_CONFIG_DIR, or a path to a YAML file).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

Name = Annotated[
    str, typer.Argument(help="Database name (in SLUICEGATE_CDC_CONFIG_DIR) or a YAML path.")
]
OptionalName = Annotated[
    str | None,
    typer.Argument(help="Database name or YAML path [default: every config in the directory]."),
]

# Connect/Debezium property -> the config field a user fixes.
_FIELD_OF = {
    "database.hostname": "connection.host",
    "database.port": "connection.port",
    "database.dbname": "connection.dbname",
    "database.user": "connection.user",
    "database.password": "connection.password_env",
    "table.include.list": "tables",
    "column.exclude.list": "tables[].exclude_columns",
    "message.key.columns": "tables[].key_columns",
    "snapshot.mode": "snapshot_mode",
    "slot.name": "slot_name",
    "publication.name": "publication_name",
    "heartbeat.interval.ms": "heartbeat_interval_ms",
}


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _configs(name: str | None, settings: Settings) -> list[DatabaseConfig]:
    if name is not None:
        return [resolve_config(name, settings.cdc_config_dir)]
    if settings.cdc_config_dir is None:
        raise _fail("name a database (or a YAML file), or set SLUICEGATE_CDC_CONFIG_DIR")
    configs = load_configs(settings.cdc_config_dir)
    if not configs:
        raise _fail(f"no database configs in {settings.cdc_config_dir}")
    return configs


def _run(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except SluicegateError as exc:
        raise _fail(exc.message) from exc


def _validation_message(cfg: DatabaseConfig, errors: dict[str, list[str]]) -> str:
    parts: list[str] = []
    for prop, messages in errors.items():
        where = _FIELD_OF.get(prop, prop)
        parts.extend(
            f"{where}: {m.removeprefix('Error while validating connector config: ')}"
            for m in messages
        )
    return f"{cfg.name}: Kafka Connect refused the connector config: " + "; ".join(parts)


def _apply_one(cfg: DatabaseConfig, settings: Settings, wait: bool, timeout: float) -> None:
    password = cfg.password(os.environ)
    for warning in preflight(cfg, password):
        typer.echo(f"warning: {cfg.name}: {warning}", err=True)
    for table in ensure_full_replica_identity(cfg, password):
        typer.echo(f"{cfg.name}: {table}: REPLICA IDENTITY FULL (deletes carry the whole row)")
    config = render_connector_config(cfg, password=password)
    with ConnectClient(settings.connect_url) as connect:
        errors = connect.validate(cfg.connector_name, config)
        if errors:
            raise _fail(_validation_message(cfg, errors))
        create_raw_topics(settings.kafka_bootstrap, [cfg.raw_topic(t) for t in cfg.tables])
        created = connect.put_config(cfg.connector_name, config)
        verb = "created" if created else "updated"
        typer.echo(f"{cfg.name}: connector {cfg.connector_name} {verb}")
        if wait:
            st = connect.wait(cfg.connector_name, ("RUNNING", "PAUSED", "STOPPED"), timeout=timeout)
            if st.failed:
                raise _fail(f"{cfg.name}: connector {cfg.connector_name} failed: {st.last_error}")
            if st.state != "RUNNING" or not st.running:
                if st.state in ("PAUSED", "STOPPED"):
                    typer.echo(f"{cfg.name}: connector is {st.state} (resume it to capture)")
                else:
                    raise _fail(
                        f"{cfg.name}: connector not RUNNING after {timeout:.0f} s "
                        f"(state {st.state})"
                    )
            else:
                typer.echo(f"{cfg.name}: RUNNING")
    for t in cfg.tables:
        typer.echo(f"  {t.name} -> {cfg.subject_of(t)}")


@cdc_app.command()
def apply(
    name: OptionalName = None,
    wait: Annotated[bool, typer.Option(help="Wait until the connector runs.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for RUNNING.")] = 60.0,
) -> None:
    """Validate the config(s), check the source database, and create or update the
    connector (idempotent)."""
    settings = Settings()
    for cfg in _run(_configs, name, settings):
        _run(_apply_one, cfg, settings, wait, timeout)


def _bridge_status(cfg: DatabaseConfig, settings: Settings) -> dict[str, Any] | str:
    headers = auth_headers(settings)
    try:
        r = httpx.get(f"{settings.base_url}/v1/cdc/{cfg.name}", headers=headers, timeout=10)
    except httpx.HTTPError:
        return f"unknown (`sluicegate serve` not reachable at {settings.base_url})"
    if r.status_code != 200:
        try:
            return f"unknown ({r.json().get('message', r.text)})"
        except ValueError:
            return f"unknown (HTTP {r.status_code})"
    return r.json()  # type: ignore[no-any-return]  # the endpoint answers an object


def _status_one(cfg: DatabaseConfig, settings: Settings) -> bool:
    with ConnectClient(settings.connect_url) as connect:
        st = connect.status(cfg.connector_name)
    ok = st.running
    typer.echo(f"{cfg.name} (team {cfg.team})")
    typer.echo(f"  connector {cfg.connector_name}: {st.state}")
    for t in st.tasks:
        typer.echo(f"  task {t.id}: {t.state}" + (f" on {t.worker_id}" if t.worker_id else ""))
    if st.last_error:
        typer.echo(f"  last error: {st.last_error}")
    try:
        with open_source(cfg, cfg.password(os.environ)) as conn:
            slot = slot_info(conn, cfg.slot)
        if slot is None:
            typer.echo(f"  slot {cfg.slot}: absent")
        else:
            held = (
                ""
                if slot.retained_bytes is None
                else f", {slot.retained_bytes} bytes of WAL retained"
            )
            typer.echo(f"  slot {cfg.slot}: {'active' if slot.active else 'inactive'}{held}")
    except SluicegateError as exc:
        typer.echo(f"  slot {cfg.slot}: unknown ({exc.message})")
    bridge = _bridge_status(cfg, settings)
    if isinstance(bridge, str):
        typer.echo(f"  bridge: {bridge}")
        return ok
    problem = f" ({bridge['error']})" if bridge.get("error") else ""
    typer.echo(f"  bridge: {bridge['bridge']}{problem}")
    if bridge.get("catalog_error"):
        typer.echo(f"  catalog: {bridge['catalog_error']}")
    for t in bridge["tables"]:
        version = f"v{t['schema_version']}" if t["schema_version"] else "no version yet"
        in_log = t.get("changes_in_log")
        logged = f", {in_log} in the log" if in_log is not None else ""
        typer.echo(
            f"  {t['table']} -> {t['subject']} ({version}): {t['state']}, "
            f"{t['changes']} changes since start{logged}"
        )
        if t["error"]:
            typer.echo(f"    error: {t['error']}")
            if t.get("held_offset") is not None:
                typer.echo(f"    held at {t['raw_topic']} offset {t['held_offset']}")
        ok = ok and t["state"] == "running"
    return ok


@cdc_app.command()
def status(name: OptionalName = None) -> None:
    """Connector and task state with the last error in plain words, the replication slot,
    and per table the bridge's state (exit 1 when anything is not running)."""
    settings = Settings()
    ok = True
    for cfg in _run(_configs, name, settings):
        ok = _run(_status_one, cfg, settings) and ok
    if not ok:
        raise typer.Exit(1)


def _connector_action(name: str, action: str) -> None:
    settings = Settings()
    cfg = _run(resolve_config, name, settings.cdc_config_dir)
    with ConnectClient(settings.connect_url) as connect:
        _run(getattr(connect, action), cfg.connector_name)
    typer.echo(f"{cfg.name}: {action} requested for connector {cfg.connector_name}")


@cdc_app.command()
def pause(name: Name) -> None:
    """Pause the connector (the slot keeps WAL until it resumes)."""
    _connector_action(name, "pause")


@cdc_app.command()
def resume(name: Name) -> None:
    """Resume a paused connector."""
    _connector_action(name, "resume")


@cdc_app.command()
def restart(name: Name) -> None:
    """Restart the connector and its task, for instance once the cause of a failure is fixed."""
    _connector_action(name, "restart")


def _delete_one(cfg: DatabaseConfig, settings: Settings, drop: bool) -> None:
    with ConnectClient(settings.connect_url) as connect:
        if not connect.exists(cfg.connector_name):
            typer.echo(f"{cfg.name}: no connector {cfg.connector_name}")
        elif drop:
            # stop first: the task lets go of the slot, and offsets can only be reset then
            connect.stop(cfg.connector_name)
            connect.wait(cfg.connector_name, ("STOPPED",), timeout=30)
            connect.delete_offsets(cfg.connector_name)
            connect.delete(cfg.connector_name)
            typer.echo(f"{cfg.name}: connector {cfg.connector_name} deleted, offsets reset")
        else:
            connect.delete(cfg.connector_name)
            typer.echo(
                f"{cfg.name}: connector {cfg.connector_name} deleted "
                f"(slot {cfg.slot} kept: a new connector resumes from it)"
            )
    if drop:
        with open_source(cfg, cfg.password(os.environ)) as conn:
            dropped = drop_slot(conn, cfg.slot)
            drop_publication(conn, cfg.publication)
        typer.echo(
            f"{cfg.name}: slot {cfg.slot} {'dropped' if dropped else 'was absent'}, "
            f"publication {cfg.publication} dropped"
        )


@cdc_app.command()
def delete(
    name: Name,
    drop_slot_: Annotated[
        bool,
        typer.Option(
            "--drop-slot",
            help="Also reset the connector's offsets and drop its "
            "replication slot and publication (the next apply starts afresh).",
        ),
    ] = False,
) -> None:
    """Delete the connector; with --drop-slot also its slot, publication and offsets."""
    settings = Settings()
    cfg = _run(resolve_config, name, settings.cdc_config_dir)
    _run(_delete_one, cfg, settings, drop_slot_)
