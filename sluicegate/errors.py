"""One error tree for the whole product. Each error knows its HTTP status and its
Confluent-style ``error_code``, and one FastAPI handler renders every one of them as
``{"error_code": int, "message": str, ...details}``. Routes never build error JSON.

    SluicegateError (500, 50001)
    ├── BadRequest (400, 40001)
    │   └── MalformedBody (400, 40002)
    ├── Unauthorized (401, 40101)
    ├── Forbidden (403, 40301)
    ├── NotFound (404)
    │   ├── SubjectNotFound (40401)
    │   ├── VersionNotFound (40402)
    │   ├── SchemaNotFound (40403)
    │   ├── SubjectSoftDeleted (40404)
    │   ├── SubjectNotSoftDeleted (40405)
    │   ├── VersionSoftDeleted (40406)
    │   ├── VersionNotSoftDeleted (40407)
    │   ├── SubjectConfigNotFound (40408)
    │   └── ResourceNotFound (40400)
    ├── Conflict (409)
    │   ├── IncompatibleSchema (40901)
    │   ├── AlreadyExists (40902)
    │   ├── BreaksFeatures (40903)
    │   └── AlreadyReplayed (40904)
    ├── PayloadTooLarge (413, 41301)
    ├── TooManyRequests (429, 42901, carries retry_after)
    ├── UnsupportedMediaType (415, 41501)
    ├── Unprocessable (422)
    │   ├── InvalidSchema (42201)
    │   ├── InvalidVersion (42202)
    │   ├── InvalidCompatibilityLevel (42203)
    │   ├── InvalidMigration (42210)
    │   ├── InvalidDefinition (42220)
    │   ├── EventRejected (42230, carries violations)
    │   └── InvalidCdcConfig (42240, carries violations)
    ├── Unavailable (503, 50301, carries retry_after)
    │   └── StoreUnavailable (50302)
    └── MigrationFailed (500, 50010)

Dependency errors (Kafka, ClickHouse, SQLAlchemy, fastavro) are mapped to these at the
module that calls the dependency, chained with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SluicegateError(Exception):
    """Root of every error Sluicegate raises on purpose."""

    status: ClassVar[int] = 500
    error_code: ClassVar[int] = 50001

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        """The JSON body of the HTTP error response."""
        return {"error_code": self.error_code, "message": self.message, **self.details}


class BadRequest(SluicegateError):
    status, error_code = 400, 40001


class MalformedBody(BadRequest):
    error_code = 40002


class Unauthorized(SluicegateError):
    status, error_code = 401, 40101


class Forbidden(SluicegateError):
    status, error_code = 403, 40301


class NotFound(SluicegateError):
    status, error_code = 404, 40400


class ResourceNotFound(NotFound):
    error_code = 40400


class SubjectNotFound(NotFound):
    error_code = 40401


class VersionNotFound(NotFound):
    error_code = 40402


class SchemaNotFound(NotFound):
    error_code = 40403


class SubjectSoftDeleted(NotFound):
    error_code = 40404


class SubjectNotSoftDeleted(NotFound):
    error_code = 40405


class VersionSoftDeleted(NotFound):
    error_code = 40406


class VersionNotSoftDeleted(NotFound):
    error_code = 40407


class SubjectConfigNotFound(NotFound):
    error_code = 40408


class Conflict(SluicegateError):
    status, error_code = 409, 40900


class IncompatibleSchema(Conflict):
    error_code = 40901


class AlreadyExists(Conflict):
    error_code = 40902


class BreaksFeatures(Conflict):
    """A schema change that would break live features' definitions (``features`` names
    them); the subject's owner may force it."""

    error_code = 40903


class AlreadyReplayed(Conflict):
    """A rejection or dead letter that was replayed before (``replayed`` says when)."""

    error_code = 40904


class PayloadTooLarge(SluicegateError):
    status, error_code = 413, 41301


class TooManyRequests(SluicegateError):
    """The caller's team already uses its fair share of a shared resource; retry later."""

    status, error_code = 429, 42901

    def __init__(self, message: str, *, retry_after: int = 1, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class UnsupportedMediaType(SluicegateError):
    status, error_code = 415, 41501


class Unprocessable(SluicegateError):
    status, error_code = 422, 42200


class InvalidSchema(Unprocessable):
    error_code = 42201


class InvalidVersion(Unprocessable):
    error_code = 42202


class InvalidCompatibilityLevel(Unprocessable):
    error_code = 42203


class InvalidMigration(Unprocessable):
    error_code = 42210


class InvalidDefinition(Unprocessable):
    error_code = 42220


class EventRejected(Unprocessable):
    """An event failed validation; ``violations`` lists every failure (path, rule, message)."""

    error_code = 42230


class InvalidCdcConfig(Unprocessable):
    """A CDC database config breaks a rule; ``violations`` names each field (path, rule,
    message)."""

    error_code = 42240


class Unavailable(SluicegateError):
    """A dependency (Kafka, ClickHouse, the registry database) is down; retry later."""

    status, error_code = 503, 50301

    def __init__(self, message: str, *, retry_after: int = 1, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class StoreUnavailable(Unavailable):
    error_code = 50302


class MigrationFailed(SluicegateError):
    """A numbered DDL file could not be applied, or an applied one was edited afterwards."""

    error_code = 50010
