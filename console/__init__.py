"""The catalog console at ``/ui``: subjects, versions and their diffs, features with their
values, lineage, rejections and dead letters (with the replay action), and the running
system's throughput and lag. Server-rendered; see docs/console.md."""

from console.routes import router

__all__ = ["router"]
