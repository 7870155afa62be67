"""The registry's HTTP API: the Confluent-compatible routes at their usual root paths
(``confluent_router``) and Sluicegate's own under ``/v1`` (``v1_router``), the auth
dependencies other packages' routes use (``require_principal``, ``optional_principal``,
``read_principal``) and ``SchemaLookupFastPath``, the middleware that answers
deserializers' schema-by-id lookups before routing.

The routers find the Registry in the typed app state (``sluicegate.state.app_state``).
"""

from registry._confluent import confluent_router
from registry._deps import get_registry, optional_principal, read_principal, require_principal
from registry._fastpath import SchemaLookupFastPath
from registry._v1 import v1_router

routers = (confluent_router, v1_router)

__all__ = [
    "SchemaLookupFastPath",
    "confluent_router",
    "get_registry",
    "optional_principal",
    "read_principal",
    "require_principal",
    "routers",
    "v1_router",
]
