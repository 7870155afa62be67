"""pydantic errors become the violations of a 4xx body the same way everywhere."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from sluicegate.violations import first_message, violations


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int

    @field_validator("n")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("n must be positive")
        return v


def _errors(data: object) -> list[dict[str, object]]:
    with pytest.raises(ValidationError) as info:
        _Item.model_validate(data)
    return info.value.errors()  # type: ignore[return-value]


def test_paths_rules_and_messages() -> None:
    found = violations(_errors({"n": 0, "extra": 1}), prefix=("items", "3"))
    assert found == [
        {"path": "items.3.n", "rule": "value_error", "message": "n must be positive"},
        {"path": "items.3.extra", "rule": "unknown_key", "message": "unknown key"},
    ]
    assert first_message(found) == "items.3.n: n must be positive"


def test_a_problem_of_the_whole_document_gets_the_empty_path() -> None:
    found = violations(_errors([1]), empty_path="body")
    assert found[0]["path"] == "body" and first_message(found).startswith("body: ")
    assert first_message([]) == "invalid request"
