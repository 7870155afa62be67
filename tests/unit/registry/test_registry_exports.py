"""The registry's public API is exactly what the other packages code against."""

from __future__ import annotations

import registry
import registry.http


def test_public_api_is_pinned() -> None:
    assert registry.__all__ == [
        "Candidate",
        "Compatibility",
        "Principal",
        "RegisterResult",
        "RegisteredSchema",
        "Registry",
        "SchemaType",
        "SubjectMetadata",
        "Violation",
    ]
    for name in registry.__all__:
        assert getattr(registry, name).__module__.startswith("registry.")


def test_http_api_is_pinned() -> None:
    assert sorted(registry.http.__all__) == [
        "SchemaLookupFastPath",
        "confluent_router",
        "get_registry",
        "optional_principal",
        "read_principal",
        "require_principal",
        "routers",
        "v1_router",
    ]


def test_registry_methods_of_the_contract_exist() -> None:
    for method in (
        "open",
        "close",
        "register",
        "schema_by_id",
        "version",
        "latest",
        "subjects",
        "metadata",
        "set_metadata",
        "test_compatibility",
        "candidate",
        "upcast",
        "authenticate",
        "create_token",
    ):
        assert callable(getattr(registry.Registry, method))
