"""The demo's workload: domain events of the world (post viewed, upvoted, commented) with
skew, a weekday rhythm, a few deliberately invalid events, and both versions of the upvote
schema once v2 exists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from sluicegate.demo.world import World, event_times
from sluicegate.envelope import ms_to_iso

VIEWED, UPVOTED, COMMENTED = "reddit.post_viewed", "reddit.upvoted", "reddit.commented"
PLATFORMS = ["web", "ios", "android"]


@dataclass(frozen=True)
class Item:
    """One event to post: its subject, body, pinned schema version and whether it was
    made invalid on purpose (so the demo can show the rejection)."""

    subject: str
    event: dict[str, Any]
    version: int | None = None
    invalid: bool = False

    def request(self) -> dict[str, Any]:
        out: dict[str, Any] = {"subject": self.subject, "event": self.event}
        if self.version is not None:
            out["version"] = self.version
        return out


def history(
    world: World, n: int, start: datetime, end: datetime, invalid_rate: float = 0.002
) -> list[Item]:
    """``n`` events between ``start`` and ``end`` in time order: 70% views, 22% upvotes,
    8% comments; upvotes use schema v1 (v2 does not exist yet when they are generated)."""
    times = event_times(world, n, start, end)
    users = world.zipf_users(n)
    posts = world.hot_posts(n)
    kinds = world.rng.choice(3, size=n, p=[0.70, 0.22, 0.08])
    broken = world.rng.random(n) < invalid_rate
    items = []
    for t, u, p, k, bad in zip(
        times.tolist(), users.tolist(), posts.tolist(), kinds.tolist(), broken.tolist(), strict=True
    ):
        items.append(make_event(world, int(k), int(u), int(p), int(t), bad))
    return items


def make_event(
    world: World, kind: int, user: int, post: int, at_ms: int, invalid: bool = False
) -> Item:
    at = ms_to_iso(at_ms)
    if kind == 0:
        event: dict[str, Any] = {
            "user_id": user,
            "post_id": post,
            "community_id": world.posts[post][1],
            "viewed_at": at,
            "dwell_ms": int(world.rng.exponential(8000)),
        }
        subject = VIEWED
    elif kind == 1:
        event, subject = {"user_id": user, "post_id": post, "upvoted_at": at}, UPVOTED
    else:
        event = {
            "user_id": user,
            "post_id": post,
            "commented_at": at,
            "body": "great point, source?",
        }
        subject = COMMENTED
    if invalid:
        # the mistakes real clients make: a missing field, a wrong type, a bad time
        mistake = int(world.rng.integers(3))
        if mistake == 0:
            event.pop("user_id")
        elif mistake == 1:
            event["post_id"] = str(post) + "x"
        else:
            event[next(k for k in event if k.endswith("_at"))] = "yesterday"
    return Item(subject, event, version=1 if subject == UPVOTED else None, invalid=invalid)


def upgrade_upvotes(world: World, items: list[Item], share_v2: float = 0.5) -> list[Item]:
    """After upvote v2 is registered, about half the clients send v2 (with a platform);
    the others keep sending v1, pinned to version 1."""
    out = []
    for item in items:
        if item.subject == UPVOTED and not item.invalid and world.rng.random() < share_v2:
            platform = PLATFORMS[int(world.rng.integers(len(PLATFORMS)))]
            out.append(Item(UPVOTED, {**item.event, "platform": platform}, version=2))
        else:
            out.append(item)
    return out


def negatives(world: World, items: list[Item], count: int) -> list[Item]:
    """``count`` sampled views to serve as negative examples ("viewed, did not upvote")."""
    views = [i for i in items if i.subject == VIEWED and not i.invalid]
    if not views:
        return []
    picks = world.rng.choice(len(views), size=min(count, len(views)), replace=False)
    return [views[int(i)] for i in np.sort(picks)]
