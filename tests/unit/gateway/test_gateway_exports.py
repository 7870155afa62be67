"""The gateway's public API is what ``gateway.__all__`` says, and nothing else."""

from __future__ import annotations

import gateway


def test_public_api_is_pinned() -> None:
    assert sorted(gateway.__all__) == [
        "Delivery",
        "Gateway",
        "Incoming",
        "KafkaSink",
        "OutboundRecord",
        "Outcome",
        "Reason",
        "SluicegateClient",
        "Validators",
        "Violation",
        "batch_event_id",
        "merged_rejections",
        "producer_config",
        "replay_dead_letter",
        "replay_rejection",
        "router",
        "start_gateway",
    ]
    for name in gateway.__all__:
        assert getattr(gateway, name) is not None
