"""What the integration tests share: starting a real `sluicegate serve` (``serving``),
and per-area helpers for CDC, features, the gateway, the materializer and the registry.
Imported as ``support.<module>`` (pytest puts ``tests/`` on the path)."""
