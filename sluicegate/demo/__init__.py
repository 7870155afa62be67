"""`sluicegate demo` (and `make demo`): the article's Reddit scenario end to end on the
local stack. See README.md, "What the demo does"."""

from sluicegate.demo.scenario import Options, run

__all__ = ["Options", "run"]
