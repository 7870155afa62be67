"""The materializer's tuning knobs (plain values; the composition root fills them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MaterializerConfig:
    """How the materializer consumes and loads.

    A load happens when ``max_batch_rows`` records are buffered or the oldest buffered
    record has waited ``max_batch_ms``, whichever comes first.
    """

    kafka_bootstrap: str
    group_id: str = "sluicegate-materializer"
    # Static group membership: a restarted process with the same id takes its partitions
    # back at once instead of waiting for the dead member's session to expire. Only for a
    # store that one process owns (chDB); loaders sharing a ClickHouse server leave it None.
    instance_id: str | None = None
    session_timeout_ms: int = 10_000
    # The topics to load, as a librdkafka pattern (starts with ^) or a name; None: every
    # governed topic, new ones included.
    subscription: str | None = None
    max_batch_rows: int = 100_000
    max_batch_ms: int = 250
    # How soon a new governed topic (a new subject) is picked up by the pattern subscription.
    metadata_refresh_ms: int = 2_000
    # Backoff while ClickHouse (or the registry) is unavailable: doubles up to the maximum.
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
