"""Errors of the schema registry, each carrying its Confluent error code.

Every error a client can see maps to one HTTP status and one Confluent
``error_code`` (see Confluent's "Schema Registry API Reference", section
"Errors"), so that ``confluent_kafka.schema_registry.SchemaRegistryError``
and the Java client classify them exactly as they would against Confluent's
own server. The body is always ``{"error_code": ..., "message": ...}``.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base of every error the registry answers with; never raised itself."""

    http_status: int = 500
    error_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_body(self) -> dict[str, object]:
        return {"error_code": self.error_code, "message": self.message}


class SubjectNotFoundError(RegistryError):
    http_status, error_code = 404, 40401

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' not found.")


class VersionNotFoundError(RegistryError):
    http_status, error_code = 404, 40402

    def __init__(self, subject: str, version: object) -> None:
        super().__init__(f"Version {version} not found for subject '{subject}'.")


class SchemaNotFoundError(RegistryError):
    http_status, error_code = 404, 40403


class SubjectSoftDeletedError(RegistryError):
    http_status, error_code = 404, 40404

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
        )


class SubjectNotSoftDeletedError(RegistryError):
    http_status, error_code = 404, 40405

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' was not deleted first before being permanently deleted"
        )


class VersionSoftDeletedError(RegistryError):
    http_status, error_code = 404, 40406

    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"Subject '{subject}' Version {version} was soft deleted. "
            "Set permanent=true to delete permanently"
        )


class VersionNotSoftDeletedError(RegistryError):
    http_status, error_code = 404, 40407

    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"Subject '{subject}' Version {version} was not deleted first "
            "before being permanently deleted"
        )


class SubjectConfigNotFoundError(RegistryError):
    http_status, error_code = 404, 40408

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' does not have subject-level compatibility configured")


class IncompatibleSchemaError(RegistryError):
    """A schema the subject's compatibility level refuses (HTTP 409, error_code 409)."""

    http_status, error_code = 409, 409


class MalformedRequestError(RegistryError):
    http_status, error_code = 400, 400


class InvalidSchemaError(RegistryError):
    http_status, error_code = 422, 42201


class InvalidVersionError(RegistryError):
    http_status, error_code = 422, 42202

    def __init__(self, version: object) -> None:
        super().__init__(
            f"The specified version '{version}' is not a valid version id. "
            "Allowed values are between [1, 2^31-1] and the string \"latest\""
        )


class InvalidCompatibilityLevelError(RegistryError):
    http_status, error_code = 422, 42203

    def __init__(self, level: object) -> None:
        super().__init__(
            "Invalid compatibility level. Valid values are none, backward, forward, full, "
            f"backward_transitive, forward_transitive, and full_transitive; got {level!r}"
        )


class StoreError(RegistryError):
    """The Kafka topic behind the registry could not be read or written.

    A write that raises this was not applied to the index, but it may still
    have reached the topic (a timed-out produce is ambiguous): the store
    re-reads the topic before its next write, and the id the write would
    have used is never handed out again.
    """

    http_status, error_code = 500, 50001
