"""One exception hierarchy, and the only place that turns it into HTTP.

Services raise these; ``register_error_handlers`` maps them (and every other exception) to a JSON body
``{"status": ..., "error": ..., "message": ...}`` so a client never sees a traceback.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


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


def error_body(status: int, title: str, message: str) -> dict:
    return {"status": status, "error": title, "message": message}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DicomWebError)
    def _dicomweb_error(exc: DicomWebError):
        response = jsonify(error_body(exc.status, exc.title, exc.message))
        response.status_code = exc.status
        for name, value in exc.headers.items():
            response.headers[name] = value
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # flask-smorest raises werkzeug errors carrying a ``data`` dict for validation failures.
        message = exc.description or exc.name
        data = getattr(exc, "data", None)
        if isinstance(data, dict) and data.get("messages"):
            message = f"{message}: {data['messages']}"
        response = jsonify(error_body(exc.code or 500, exc.name, str(message)))
        response.status_code = exc.code or 500
        if exc.code == 405 and exc.response is None:
            allowed = getattr(exc, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        response = jsonify(error_body(500, "Internal Server Error",
                                      "The server failed to process the request; see the server log."))
        response.status_code = 500
        return response
