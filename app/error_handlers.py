"""The only place that turns exceptions into HTTP: a JSON body ``{"status", "error", "message"}``,
never a traceback."""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from app.errors import DicomWebError

log = logging.getLogger(__name__)


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
