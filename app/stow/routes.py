"""STOW-RS routes (PS3.18 10.5): thin HTTP over app/stow/service.py."""
from __future__ import annotations

import json

from flask import Response, request
from flask_smorest import Blueprint

from app.codec.native_xml import to_xml
from app.dicomweb import media
from app.dicomweb.uids import require_uid
from app.errors import NotAcceptable, PayloadTooLarge
from app.runtime import current_services, wado_rs_base
from app.stow import service

blp = Blueprint("stow", __name__, description="STOW-RS: store instances (PS3.18 10.5)")

_REQUEST_BODY = {
    "required": True,
    "description": "multipart/related; type=\"application/dicom\" with one Part-10 object per part, or "
                   "type=\"application/dicom+json\" / \"application/dicom+xml\" metadata parts plus bulk "
                   "data parts referenced by Content-Location.",
    "content": {"multipart/related": {"schema": {"type": "string", "format": "binary"}}},
}
_RESPONSES = {
    "200": {"description": "All instances stored"},
    "202": {"description": "Some instances stored, some failed or stored with warnings"},
    "400": {"description": "The multipart body cannot be read (malformed or truncated)"},
    "406": {"description": "Accept names no media type the response can take"},
    "409": {"description": "No instance could be stored; FailedSOPSequence says why"},
    "415": {"description": "Content-Type is not multipart/related of DICOM"},
}
RESPONSE_TYPES = [media.DICOM_JSON, media.JSON, media.DICOM_XML]


def _store(study: str | None):
    if study is not None:
        require_uid(study, "StudyInstanceUID")
    chosen = media.choose(request.headers.get("Accept"), RESPONSE_TYPES)
    if chosen is None:
        raise NotAcceptable("STOW-RS responses are available as " + ", ".join(RESPONSE_TYPES))
    base = wado_rs_base()
    ctx = service.StoreContext.for_services(current_services(), base)
    if ctx.max_request_bytes and (request.content_length or 0) > ctx.max_request_bytes:
        raise PayloadTooLarge(f"request body of {request.content_length} bytes exceeds stow:maxRequestBytes")
    outcome = service.store_request(request.stream, request.headers.get("Content-Type"), study, ctx)
    body = service.response_dataset(outcome, base)
    if chosen == media.DICOM_XML:
        return Response(to_xml(body), status=outcome.http_status, content_type=media.DICOM_XML)
    return Response(json.dumps(body), status=outcome.http_status,
                    content_type=media.DICOM_JSON if chosen != media.JSON else media.JSON)


@blp.route("/api/studies", methods=["POST"])
@blp.doc(requestBody=_REQUEST_BODY, responses=_RESPONSES)
def store_instances():
    """Store instances of any studies."""
    return _store(None)


@blp.route("/api/studies/<study>", methods=["POST"])
@blp.doc(requestBody=_REQUEST_BODY, responses=_RESPONSES)
def store_study_instances(study):
    """Store instances of one study; a part of another study fails alone."""
    return _store(study)


@blp.route("/stowrs", methods=["POST"])
@blp.route("/stowrs/studies", methods=["POST"])
@blp.doc(requestBody=_REQUEST_BODY, responses=_RESPONSES)
def dicomcloud_store_instances():
    """DICOMcloud alias of POST /api/studies."""
    return _store(None)


@blp.route("/stowrs/studies/<study>", methods=["POST"])
@blp.doc(requestBody=_REQUEST_BODY, responses=_RESPONSES)
def dicomcloud_store_study_instances(study):
    """DICOMcloud alias of POST /api/studies/{study}."""
    return _store(study)
