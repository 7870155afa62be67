"""The demo's Reddit-like world: users, communities, memberships and posts with realistic
skew (a few hot posts and heavy users), and the domain events people generate in it.

Deterministic for a seed, so a re-run plays the same story.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

DAY_MS = 86_400_000
# relative activity per weekday (Mon..Sun): weekends are busier on a forum
WEEKDAY_WEIGHT = np.array([1.0, 0.95, 0.95, 1.0, 1.1, 1.5, 1.6])


@dataclass
class World:
    """The state the microservice databases hold, plus a seeded random generator."""

    seed: int
    users: int
    communities: list[str]
    memberships: set[tuple[int, int]] = field(default_factory=set)
    posts: dict[int, tuple[int, int]] = field(default_factory=dict)  # post -> (author, community)
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def zipf_users(self, n: int) -> np.ndarray:
        """``n`` user ids drawn with a heavy head: a few users do most of the clicking."""
        return (self.rng.zipf(1.6, n) - 1) % self.users + 1

    def hot_posts(self, n: int) -> np.ndarray:
        """``n`` post ids drawn with a heavy head: a few posts get most of the views."""
        ids = np.fromiter(self.posts, dtype=np.int64)
        ranks = (self.rng.zipf(1.4, n) - 1) % len(ids)
        return ids[ranks]


COMMUNITY_NAMES = [
    "python",
    "machinelearning",
    "datascience",
    "askreddit",
    "worldnews",
    "gaming",
    "movies",
    "science",
    "music",
    "books",
    "cooking",
    "fitness",
    "travel",
    "photography",
    "programming",
    "rust",
    "golang",
    "kafka",
    "clickhouse",
    "postgres",
]


def make_world(seed: int, users: int, communities: int, posts: int) -> World:
    """Seed the world: memberships (each user in 1-5 communities) and posts."""
    names = [
        COMMUNITY_NAMES[i % len(COMMUNITY_NAMES)]
        + (f"_{i // len(COMMUNITY_NAMES)}" if i >= len(COMMUNITY_NAMES) else "")
        for i in range(communities)
    ]
    world = World(seed=seed, users=users, communities=names)
    for user in range(1, users + 1):
        for c in world.rng.choice(communities, size=int(world.rng.integers(1, 6)), replace=False):
            world.memberships.add((user, int(c) + 1))
    authors = world.zipf_users(posts)
    for post in range(1, posts + 1):
        world.posts[post] = (int(authors[post - 1]), int(world.rng.integers(1, communities + 1)))
    return world


def event_times(world: World, n: int, start: datetime, end: datetime) -> np.ndarray:
    """``n`` event times (epoch ms) between ``start`` and ``end``, following the weekday
    rhythm and a daily cycle (quiet nights), sorted."""
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    days = max(1, (end_ms - start_ms) // DAY_MS + 1)
    day_starts = start_ms + DAY_MS * np.arange(days)
    weights = WEEKDAY_WEIGHT[[datetime.fromtimestamp(d / 1000, UTC).weekday() for d in day_starts]]
    day = world.rng.choice(days, size=n, p=weights / weights.sum())
    # time of day: a bump around 20:00 UTC
    hour = np.clip(world.rng.normal(19.5, 4.0, n), 0, 23.999)
    times = day_starts[day] + (hour * 3_600_000).astype(np.int64)
    return np.sort(np.clip(times, start_ms, end_ms - 1))


def random_comment(rng: random.Random) -> str:
    words = [
        "great",
        "point",
        "source?",
        "this",
        "exactly",
        "lol",
        "agreed",
        "nope",
        "thanks",
        "wow",
    ]
    return " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))


def days_ago(days: int, now: datetime | None = None) -> datetime:
    base = now or datetime.now(UTC)
    return (base - timedelta(days=days)).replace(microsecond=0)
