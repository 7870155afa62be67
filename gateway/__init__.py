"""The ingest gateway: validated HTTP event posting into governed Kafka topics.

``router`` holds the HTTP routes (mounted by ``sluicegate.app``); ``start_gateway`` builds
the Kafka producer and the pipeline in the app's lifespan. ``gateway.client`` is the Python
client services use to post events.
"""

from gateway._app import start_gateway
from gateway._http import router
from gateway._producer import Delivery, KafkaSink, OutboundRecord, producer_config
from gateway._rejections import Reason
from gateway._repair import merged_rejections, replay_dead_letter, replay_rejection
from gateway._service import Gateway, Incoming, Outcome, batch_event_id
from gateway._validation import Validators
from gateway._violation import Violation
from gateway.client import SluicegateClient

__all__ = [
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
