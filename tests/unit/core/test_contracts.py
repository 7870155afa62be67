from __future__ import annotations

import pytest
from pydantic import ValidationError

from sluicegate import errors
from sluicegate.naming import (
    GOVERNED_TOPIC_PATTERN,
    REJECTED_TOPIC,
    cdc_subject,
    is_valid_subject,
    subject_for_topic,
    topic_for_subject,
)
from sluicegate.settings import Settings


def test_topics_and_subjects_map_both_ways() -> None:
    assert topic_for_subject("reddit.upvote") == "sg.reddit.upvote"
    assert subject_for_topic("sg.reddit.upvote") == "reddit.upvote"
    assert cdc_subject("app", "users") == "cdc.app.users"
    with pytest.raises(ValueError, match="not a governed topic"):
        subject_for_topic(REJECTED_TOPIC)


def test_governed_pattern_excludes_the_dead_letter_topic() -> None:
    import re

    pattern = re.compile(GOVERNED_TOPIC_PATTERN)
    assert pattern.match("sg.reddit.upvote")
    assert not pattern.match(REJECTED_TOPIC)
    assert not pattern.match("cdc.public.users")


@pytest.mark.parametrize("subject", ["", "has space", "a/b", "rejected", "x" * 300, "-lead"])
def test_subjects_that_cannot_be_topic_names_are_invalid(subject: str) -> None:
    assert not is_valid_subject(subject)


def test_settings_read_the_sluicegate_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICEGATE_KAFKA_BOOTSTRAP", "broker:9092")
    monkeypatch.setenv("SLUICEGATE_ANONYMOUS_READ", "true")
    monkeypatch.setenv("SLUICEGATE_ADMIN_TOKEN", "s3cret")
    s = Settings()
    assert s.kafka_bootstrap == "broker:9092"
    assert s.anonymous_read is True
    assert s.admin_token is not None and s.admin_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)
    assert s.registry_url.startswith("sqlite:///") and s.registry_url.endswith("registry.db")


def test_settings_refuse_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValidationError, match="kafka_bootsrap"):
        Settings(kafka_bootsrap="x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="port"):
        Settings(port=70000)


def test_every_error_renders_status_and_code() -> None:
    exc = errors.IncompatibleSchema(
        "incompatible: /a: type narrowed", messages=["/a: type narrowed"]
    )
    assert exc.status == 409
    assert exc.body() == {
        "error_code": 40901,
        "message": "incompatible: /a: type narrowed",
        "messages": ["/a: type narrowed"],
    }
    assert errors.SubjectNotFound("x").status == 404
    assert errors.Unavailable("kafka down", retry_after=3).retry_after == 3
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, errors.SluicegateError):
            assert 400 <= cls.status < 600
            assert cls.error_code // 100 == cls.status
