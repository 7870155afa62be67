"""The one place that turns subjects into topic names and back, and names CDC subjects."""

from __future__ import annotations

import re

TOPIC_PREFIX = "sg."
REJECTED_TOPIC = "sg.rejected"
GOVERNED_TOPIC_PATTERN = r"^sg\.(?!rejected$).+"
CLICKHOUSE_DATABASE = "sluicegate"

# Kafka topic names allow [a-zA-Z0-9._-], at most 249 characters; "sg." takes 3.
_SUBJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,245}$")


def is_valid_subject(subject: str) -> bool:
    """Whether ``subject`` can be a governed subject (it must make a legal Kafka topic name)."""
    return bool(_SUBJECT_RE.match(subject)) and subject != "rejected"


def topic_for_subject(subject: str) -> str:
    """``reddit.upvote`` -> ``sg.reddit.upvote``."""
    return TOPIC_PREFIX + subject


def subject_for_topic(topic: str) -> str:
    """``sg.reddit.upvote`` -> ``reddit.upvote``; raises ValueError for other topics."""
    if not topic.startswith(TOPIC_PREFIX) or topic == REJECTED_TOPIC:
        raise ValueError(f"not a governed topic: {topic!r}")
    return topic[len(TOPIC_PREFIX) :]


def governed_topic_subscription() -> str:
    """:data:`GOVERNED_TOPIC_PATTERN` as a regex librdkafka accepts for a pattern
    subscription: its engine has no lookahead, so "every ``sg.`` topic except
    ``sg.rejected``" is spelled out as alternatives that differ from the excluded name."""
    excluded = REJECTED_TOPIC[len(TOPIC_PREFIX) :]
    alternatives = []
    for i, char in enumerate(excluded):
        head = re.escape(excluded[:i])
        if i:
            alternatives.append(head + "$")
        alternatives.append(f"{head}[^{re.escape(char)}]")
    alternatives.append(re.escape(excluded) + ".")
    return f"^{re.escape(TOPIC_PREFIX)}({'|'.join(alternatives)})"


def cdc_subject(database: str, table: str) -> str:
    """The governed subject of a captured table: ``cdc.<db>.<table>``."""
    return f"cdc.{database}.{table}"
