"""The CDC service inside `sluicegate serve`: one bridge per database config found in
``SLUICEGATE_CDC_CONFIG_DIR``, kept in step with the directory (a new file starts a
bridge, a changed one restarts it, a removed one stops it)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from cdc._bridge import DatabaseBridge
from cdc._config import DatabaseConfig, load_config
from cdc._connect import ConnectClient
from cdc._metrics import CdcMetrics
from registry import Registry
from sluicegate.errors import ResourceNotFound, SluicegateError
from sluicegate.kafka import GovernedTopics, member_of
from sluicegate.settings import Settings

__all__ = ["CdcService", "start_cdc"]

log = logging.getLogger("sluicegate.cdc")

RESCAN_INTERVAL_S = 3.0


class CdcService:
    """The running bridges, and the config files that could not be loaded."""

    def __init__(
        self,
        directory: Path,
        *,
        registry: Registry,
        kafka_bootstrap: str,
        connect: ConnectClient,
        metrics: CdcMetrics,
        environ: Mapping[str, str],
        member: str | None = None,
        topics: GovernedTopics | None = None,
    ) -> None:
        """``member``: this process's identity (see :func:`sluicegate.kafka.member_of`),
        so that its bridges rejoin their consumer groups at once after a restart."""
        self.directory = directory
        self._member = member
        self._topics = topics
        self.connect = connect
        self._registry = registry
        self._bootstrap = kafka_bootstrap
        self._metrics = metrics
        self._environ = environ
        self._bridges: dict[str, DatabaseBridge] = {}
        self.invalid: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="cdc-configs", daemon=True)

    def start(self) -> None:
        self.rescan()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        with self._lock:
            for bridge in self._bridges.values():
                bridge.stop()
            self._bridges.clear()
        self.connect.close()

    def _watch(self) -> None:
        while not self._stop.wait(RESCAN_INTERVAL_S):
            try:
                self.rescan()
            except Exception:  # a bad directory must not end the watcher
                log.exception("cdc: rescanning %s failed", self.directory)

    def rescan(self) -> None:
        """Bring the running bridges in line with the config files."""
        found: dict[str, DatabaseConfig] = {}
        invalid: dict[str, str] = {}
        paths = (
            sorted([*self.directory.glob("*.yaml"), *self.directory.glob("*.yml")])
            if self.directory.is_dir()
            else []
        )
        for path in paths:
            try:
                cfg = load_config(path)
            except SluicegateError as exc:
                invalid[path.name] = exc.message
                continue
            if cfg.name in found:
                invalid[path.name] = f"name {cfg.name!r} is used by another file"
                continue
            found[cfg.name] = cfg
        with self._lock:
            self.invalid = invalid
            for name in list(self._bridges):
                if name not in found or found[name] != self._bridges[name].cfg:
                    log.info("cdc: stopping the bridge of %s", name)
                    self._bridges.pop(name).stop()
            for name, cfg in found.items():
                if name not in self._bridges:
                    self._bridges[name] = self._start(cfg)

    def _start(self, cfg: DatabaseConfig) -> DatabaseBridge:
        env = cfg.connection.password_env
        password = self._environ.get(env) if env else None
        bridge = DatabaseBridge(
            cfg,
            registry=self._registry,
            kafka_bootstrap=self._bootstrap,
            password=password,
            metrics=self._metrics,
            catalog_available=env is None or password is not None,
            member=self._member,
            topics=self._topics,
        )
        log.info("cdc: starting the bridge of %s (%d tables)", cfg.name, len(cfg.tables))
        bridge.start()
        return bridge

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._bridges)

    def status(self, name: str) -> dict[str, Any]:
        """One database: the bridge's tables and the connector's state."""
        with self._lock:
            bridge = self._bridges.get(name)
        if bridge is None:
            raise ResourceNotFound(f"no CDC database named {name!r} in {self.directory}")
        out = bridge.status()
        try:
            out["connector_status"] = self.connect.status(bridge.cfg.connector_name).to_dict()
        except SluicegateError as exc:
            out["connector_status"] = {"state": "UNKNOWN", "error": exc.message}
        return out

    def overview(self) -> dict[str, Any]:
        return {
            "config_dir": str(self.directory),
            "databases": [self.status(n) for n in self.names()],
            "invalid_configs": dict(self.invalid),
        }


def start_cdc(
    settings: Settings,
    registry: Registry,
    metrics: CollectorRegistry,
    environ: Mapping[str, str],
) -> CdcService | None:
    """Start the CDC service when ``settings.cdc_config_dir`` is set (None otherwise).
    ``metrics`` receives its collectors; ``environ`` holds the database passwords."""
    if settings.cdc_config_dir is None:
        return None
    service = CdcService(
        settings.cdc_config_dir,
        registry=registry,
        kafka_bootstrap=settings.kafka_bootstrap,
        connect=ConnectClient(settings.connect_url, timeout=5.0),
        metrics=CdcMetrics(metrics),
        environ=environ,
        member=member_of(settings.data_dir),
        topics=GovernedTopics(settings.kafka_bootstrap, settings.topic_partitions),
    )
    service.start()
    return service
