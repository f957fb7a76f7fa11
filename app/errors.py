"""One exception hierarchy, and the only place that turns it into HTTP.

Services raise these; ``app.error_handlers`` is the only place that maps them (and every other exception)
to an HTTP response, so no layer below the blueprints depends on Flask.
"""
from __future__ import annotations



class DicomWebError(Exception):
    """Base of every error the server reports to a client on purpose."""

    status = 500
    title = "Internal Server Error"

    def __init__(self, message: str, *, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(DicomWebError):
    status = 400
    title = "Bad Request"


class NotFound(DicomWebError):
    status = 404
    title = "Not Found"


class NotAcceptable(DicomWebError):
    status = 406
    title = "Not Acceptable"


class RangeNotSatisfiable(DicomWebError):
    status = 416
    title = "Range Not Satisfiable"


class Conflict(DicomWebError):
    status = 409
    title = "Conflict"


class PayloadTooLarge(DicomWebError):
    status = 413
    title = "Payload Too Large"


class UnsupportedMediaType(DicomWebError):
    status = 415
    title = "Unsupported Media Type"


class ServiceUnavailable(DicomWebError):
    status = 503
    title = "Service Unavailable"


class ConfigurationError(Exception):
    """Settings are wrong; raised at start with every problem listed (never mapped to HTTP)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("Invalid configuration:\n  - " + "\n  - ".join(self.problems))


class StorageError(Exception):
    """A blob store backend failed; backends translate their own exceptions into this at the seam."""


class BlobNotFound(StorageError):
    """The key has no blob."""


class SchemaVersionError(Exception):
    """The database schema is outside the version window this code supports."""
