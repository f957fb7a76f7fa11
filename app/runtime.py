"""The per-application services (settings, index engine, blob storage, de-identifier) and per-request
accessors."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import Response, current_app, request


@dataclass
class Services:
    settings: object
    engine: object
    storage: object
    temp_dir: Path
    deidentifier: object = None
    """app.anonymize.Deidentifier built from app:anonymizerOptions: STOW-RS applies it when
    app:enableAnonymizer is true, WADO-URI for anonymize=yes."""


def current_services() -> Services:
    return current_app.extensions["dicomcloud"]


def wado_rs_base() -> str:
    """WADO-RS root for RetrieveURL/BulkDataURI: app:WadoRsUrl, else the host and port the client used."""
    configured = current_services().settings.wado_rs_url
    if configured:
        return configured.rstrip("/")
    return request.url_root.rstrip("/") + "/api"


def respond(reply) -> Response:
    """A service's Reply (app/dicomweb/reply.py) as a streamed Flask Response; the body is chosen by
    the Accept header, so caches are told so."""
    response = Response(reply.body, status=reply.status, content_type=reply.content_type,
                        direct_passthrough=True)
    for name, value in reply.headers.items():
        response.headers[name] = value
    response.headers.setdefault("Vary", "Accept")
    return response
