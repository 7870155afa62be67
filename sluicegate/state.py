"""The typed application state: what the composition root (sluicegate/app.py) built for
one app. Routes reach it through :func:`app_state`, never through ``app.state`` names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from cdc import CdcService
    from gateway import Gateway
    from materializer.changes import ChangeChecks
    from materializer.features import FeatureStore
    from materializer.loader import Materializer, ReadOnlySql, ReplayLog
    from registry import Registry
    from sluicegate.settings import Settings

__all__ = ["AppState", "app_state"]


@dataclass
class AppState:
    """The clients and services of one app; the parts its role does not run are None."""

    settings: Settings
    registry: Registry
    metrics: CollectorRegistry
    gateway: Gateway | None = None
    cdc: CdcService | None = None
    clickhouse: Client | None = None
    sql: ReadOnlySql | None = None
    materializer: Materializer | None = None
    features: FeatureStore | None = None
    changes: ChangeChecks | None = None
    replays: ReplayLog | None = None


def app_state(request: HTTPConnection) -> AppState:
    """The state of the app serving ``request`` (set by the lifespan before any request)."""
    state: AppState = request.app.state.sluicegate
    return state
