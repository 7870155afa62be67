"""The demo's "microservice databases" in PostgreSQL: users, communities, memberships and
posts in schema ``reddit``, seeded from the world and changed while the demo runs."""

from __future__ import annotations

import threading

import psycopg

from sluicegate.demo.world import World

DDL = """
CREATE SCHEMA reddit;
CREATE TABLE reddit.users (
    id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL, karma bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE reddit.communities (
    id bigint PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE reddit.memberships (
    user_id bigint NOT NULL, community_id bigint NOT NULL,
    joined_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (user_id, community_id));
CREATE TABLE reddit.posts (
    id bigint PRIMARY KEY, author_id bigint NOT NULL, community_id bigint NOT NULL,
    title text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
"""


def reset(dsn: str) -> None:
    """Drop the demo's tables from an earlier run."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS reddit CASCADE")


def seed(dsn: str, world: World) -> int:
    """Create the tables and load the world; returns the number of rows written."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(DDL)
        with conn.cursor() as cur:
            with cur.copy("COPY reddit.users (id, name, email) FROM STDIN") as copy:
                for user in range(1, world.users + 1):
                    copy.write_row((user, f"user{user}", f"user{user}@example.com"))
            with cur.copy("COPY reddit.communities (id, name) FROM STDIN") as copy:
                for i, name in enumerate(world.communities, start=1):
                    copy.write_row((i, name))
            with cur.copy("COPY reddit.memberships (user_id, community_id) FROM STDIN") as copy:
                for row in sorted(world.memberships):
                    copy.write_row(row)
            with cur.copy(
                "COPY reddit.posts (id, author_id, community_id, title) FROM STDIN"
            ) as copy:
                for post, (author, community) in world.posts.items():
                    copy.write_row((post, author, community, f"post {post}"))
    return world.users + len(world.communities) + len(world.memberships) + len(world.posts)


class RowChanges(threading.Thread):
    """While the demo runs: new posts, members joining and leaving, karma updates, and one
    renamed community, as the services that own these tables would write them."""

    def __init__(self, dsn: str, world: World, interval_s: float = 0.2) -> None:
        super().__init__(name="demo-row-changes", daemon=True)
        self.dsn, self.world, self.interval_s = dsn, world, interval_s
        self.stop_event = threading.Event()
        self.statements = 0
        self.renamed: tuple[int, str, str] | None = None
        self.lock = threading.Lock()

    def run(self) -> None:
        rng = self.world.rng
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop_event.wait(self.interval_s):
                with self.lock:
                    user = int(self.world.zipf_users(1)[0])
                    community = int(rng.integers(1, len(self.world.communities) + 1))
                    choice = rng.random()
                    if choice < 0.35:
                        post = max(self.world.posts) + 1
                        self.world.posts[post] = (user, community)
                        conn.execute(
                            "INSERT INTO reddit.posts (id, author_id, community_id, title) VALUES (%s, %s, %s, %s)",
                            (post, user, community, f"post {post}"),
                        )
                    elif choice < 0.6 and (user, community) not in self.world.memberships:
                        self.world.memberships.add((user, community))
                        conn.execute(
                            "INSERT INTO reddit.memberships (user_id, community_id) VALUES (%s, %s)",
                            (user, community),
                        )
                    elif choice < 0.8 and self.world.memberships:
                        member = sorted(self.world.memberships)[
                            int(rng.integers(len(self.world.memberships)))
                        ]
                        self.world.memberships.discard(member)
                        conn.execute(
                            "DELETE FROM reddit.memberships WHERE user_id = %s AND community_id = %s",
                            member,
                        )
                    else:
                        conn.execute(
                            "UPDATE reddit.users SET karma = karma + 1 WHERE id = %s", (user,)
                        )
                    self.statements += 1

    def rename_community(self, community: int, new_name: str) -> None:
        """The community service renames a community (an UPDATE the features see)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            old = conn.execute(
                "SELECT name FROM reddit.communities WHERE id = %s", (community,)
            ).fetchone()
            conn.execute(
                "UPDATE reddit.communities SET name = %s WHERE id = %s", (new_name, community)
            )
        self.renamed = (community, old[0] if old else "", new_name)
        with self.lock:
            self.statements += 1

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)
