"""Sluicegate: schema-governed ingestion gateway and CDC bridge for machine learning.

This package holds the shared contracts (settings, errors, naming, the envelope, the
ClickHouse client factory) and the composition root (the CLI and the app factory).
"""

__version__ = "0.1.0"
