"""The materializer's watchdog: a loop that stops turning is reported once, with where it
waits, and the stuck-seconds gauge grows meanwhile."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from materializer.loader import LoaderMetrics, Materializer, MaterializerConfig


def _waits_on_a_write_that_never_returns(release: threading.Event) -> None:
    release.wait()


def test_a_stuck_loop_is_logged_once_with_its_stack(caplog: pytest.LogCaptureFixture) -> None:
    metrics_registry = CollectorRegistry()
    loader = Materializer(
        MaterializerConfig(kafka_bootstrap="unused:9092"),
        sink=None,  # type: ignore[arg-type]  # the watchdog touches neither
        registry=None,  # type: ignore[arg-type]
        metrics=LoaderMetrics(metrics_registry),
    )
    release = threading.Event()
    stuck = threading.Thread(target=_waits_on_a_write_that_never_returns, args=(release,))
    stuck.start()
    loader._thread = stuck
    loader._turned = time.monotonic() - 1.0  # its last turn ended a second ago
    gauge = metrics_registry.get_sample_value("sluicegate_materializer_loop_stuck_seconds")
    assert gauge is not None and gauge >= 1.0
    watchdog = threading.Thread(target=loader._watch, args=(0.2,))
    with caplog.at_level(logging.WARNING, logger="sluicegate.materializer"):
        watchdog.start()
        time.sleep(0.6)  # at least two more checks: the same stall is not logged again
        loader._stop.set()
        watchdog.join(5)
    release.set()
    stuck.join(5)
    warnings = [
        r.getMessage() for r in caplog.records if "has not finished a turn" in r.getMessage()
    ]
    assert len(warnings) == 1, warnings
    assert "_waits_on_a_write_that_never_returns" in warnings[0]


def test_a_turning_loop_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    loader = Materializer(
        MaterializerConfig(kafka_bootstrap="unused:9092"),
        sink=None,  # type: ignore[arg-type]
        registry=None,  # type: ignore[arg-type]
    )
    watchdog = threading.Thread(target=loader._watch, args=(0.2,))
    with caplog.at_level(logging.WARNING, logger="sluicegate.materializer"):
        watchdog.start()
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            loader._turned = time.monotonic()
            time.sleep(0.02)
        loader._stop.set()
        watchdog.join(5)
    assert not [r for r in caplog.records if "has not finished a turn" in r.getMessage()]
