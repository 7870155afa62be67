"""Starting the loader from the composition root: the consumer group named after the store,
the background thread, and the read-only SQL runner."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from materializer.loader._config import MaterializerConfig
from materializer.loader._consumer import Materializer
from materializer.loader._decode import SchemaSource
from materializer.loader._metrics import LoaderMetrics
from materializer.loader._sink import ClickHouseSink
from sluicegate.kafka import static_membership
from sluicegate.naming import governed_topic_subscription


def store_id(client: Client) -> str:
    """The random identity migration 0004 gave this store."""
    rows = client.query("SELECT toString(id) FROM store ORDER BY created_at LIMIT 1").result_rows
    if not rows:
        raise RuntimeError("the store has no identity: run `sluicegate migrate`")
    return str(rows[0][0])


def group_id(client: Client) -> str:
    """The consumer group of the materializers loading this store: offsets committed in
    it always describe rows in this store (a second store never shares them)."""
    return f"sluicegate-materializer-{store_id(client)}"


def start_materializer(
    client: Client,
    registry: SchemaSource,
    *,
    kafka_bootstrap: str,
    sole_loader: bool,
    subscription: str | None = None,
    metrics: LoaderMetrics | None = None,
) -> Materializer:
    """Start loading every governed topic into the store ``client`` writes to; call
    ``stop()`` on the result at shutdown. ``sole_loader``: this process is the only one
    loading the store (chDB), so it may use static group membership. ``subscription``:
    a topic or ^pattern to load instead of every governed topic. ``metrics``: the
    collectors to update (the app's, so /metrics serves them)."""
    group = group_id(client)
    topics = subscription or governed_topic_subscription()
    static = static_membership("owner" if sole_loader else None, group, [topics])
    config = MaterializerConfig(
        kafka_bootstrap=kafka_bootstrap,
        group_id=group,
        instance_id=static.get("group.instance.id"),
        subscription=subscription,
    )
    materializer = Materializer(config, ClickHouseSink(client), registry, metrics)
    materializer.start()
    return materializer
