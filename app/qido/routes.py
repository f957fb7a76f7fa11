"""QIDO-RS routes (PS3.18 10.6): thin HTTP over app/qido/service.py.

Query parameters are read from ``request.args`` here (flask-smorest would drop the attribute filters,
which have no fixed names); the OpenAPI document lists them for people.
"""
from __future__ import annotations

import json

from flask import Response, request
from flask_smorest import Blueprint

from app.codec.native_xml import to_xml
from app.dicomweb import media
from app.dicomweb.multipart import new_boundary, write_multipart
from app.errors import NotAcceptable
from app.qido import attributes as a
from app.qido import service
from app.runtime import current_services, wado_rs_base

blp = Blueprint("qido", __name__,
                description="QIDO-RS: search for studies, series and instances (PS3.18 10.6)")

XML_MULTIPART = f'multipart/related; type="{media.DICOM_XML}"'
RESPONSE_TYPES = [media.DICOM_JSON, media.JSON, XML_MULTIPART]


def _parameter(name: str, description: str, schema: dict | None = None) -> dict:
    return {"in": "query", "name": name, "required": False, "description": description,
            "schema": schema or {"type": "string"}}


_PARAMETERS = [
    {**_parameter("attributes", "Any matching key by keyword or tag, e.g. PatientName=Doe*, 00100020=123, "
               "StudyDate=20200101-20201231, StudyInstanceUID=1.2.3,1.2.4, "
               "RequestAttributesSequence.ScheduledProcedureStepID=SPS1. Empty value: universal matching. "
               "Attributes this server does not match on are ignored with a Warning header.",
                  {"type": "object", "additionalProperties": {"type": "string"}}),
     "style": "form", "explode": True},
    _parameter("includefield", "Attributes to return besides the defaults: keywords or tags, comma "
               "separated or repeated, or 'all'.", {"type": "array", "items": {"type": "string"}}),
    _parameter("fuzzymatching", "true: person names match word by word from the start of each name "
               "component, ignoring case and accents.", {"type": "boolean"}),
    _parameter("limit", "Most results to return (at most qido:maximumResultsLimit).",
               {"type": "integer", "minimum": 1}),
    _parameter("offset", "Results to skip (pages are stable: ordered by storage order).",
               {"type": "integer", "minimum": 0}),
    _parameter("TimezoneOffsetFromUTC", "Timezone of the date/time values of the query, e.g. +0100.",
               {"type": "string", "pattern": "^[+-][0-9]{4}$"}),
]
_RESPONSES = {
    "200": {"description": "The matches, possibly none ([]): application/dicom+json, or "
                           "multipart/related; type=\"application/dicom+xml\" with one part per match. A "
                           "Warning: 299 header reports ignored keys and truncated results.",
            "content": {media.DICOM_JSON: {"schema": {"type": "array", "items": {"type": "object"}}}}},
    "400": {"description": "A malformed value, an unknown parameter, a negative or non-numeric limit/offset"},
    "406": {"description": "Accept names no media type QIDO-RS responses can take"},
}
_DOC = {"parameters": _PARAMETERS, "responses": _RESPONSES}


def choose_response_type(accept: str | None) -> str | None:
    """dicom+json (also for a missing Accept or ``*/*``), application/json, or multipart XML.

    ``multipart/related`` with no ``type`` or ``type="*/*"`` can only mean the XML form here.
    """
    chosen = media.choose(accept, [media.DICOM_JSON, media.JSON, media.DICOM_XML])
    if chosen == media.DICOM_XML:
        return XML_MULTIPART
    if chosen is not None:
        return chosen
    for media_range in media.parse_accept(accept):
        if media_range.type == media.MULTIPART_RELATED and \
                (media_range.param("type") or "*/*").lower() in ("*/*", "application/*"):
            return XML_MULTIPART
    return None


def _search(level: str, study: str | None = None, series: str | None = None):
    chosen = choose_response_type(request.headers.get("Accept"))
    if chosen is None:
        raise NotAcceptable("QIDO-RS responses are available as " + ", ".join(RESPONSE_TYPES))
    services = current_services()
    query = service.parse_query(level, list(request.args.items(multi=True)), study_uid=study,
                                series_uid=series, maximum_results=services.settings.qido_maximum_results,
                                raw_query=request.query_string.decode("latin-1"))
    result = service.run_query(services.engine, query, wado_rs_base())
    if chosen == XML_MULTIPART:
        boundary = new_boundary()
        part_headers = {"Content-Type": f"{media.DICOM_XML}; charset=utf-8"}
        parts = [(part_headers, [to_xml(dataset)]) for dataset in result.datasets]
        response = Response(b"".join(write_multipart(boundary, parts)), status=200,
                            content_type=f'multipart/related; type="{media.DICOM_XML}"; boundary={boundary}')
    else:
        body = json.dumps(result.datasets, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        response = Response(body, status=200, content_type=chosen)
    host = request.host or "dicomcloud"
    for warning in result.warnings:
        response.headers.add("Warning", f'299 {host}: "{_header_text(warning)}"')
    return response


def _header_text(text: str) -> str:
    """Header-safe: Latin-1 without quotes or control characters."""
    text = text.replace('"', "'").replace("\\", "/")
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)


# --- routes: /api (PS3.18 10.6.1) and DICOMcloud's /qidors aliases --------------------------------------

@blp.route("/api/studies", methods=["GET"])
@blp.doc(**_DOC)
def search_studies():
    """Search for studies."""
    return _search(a.STUDY)


@blp.route("/api/series", methods=["GET"])
@blp.doc(**_DOC)
def search_series():
    """Search for series of all studies."""
    return _search(a.SERIES)


@blp.route("/api/instances", methods=["GET"])
@blp.doc(**_DOC)
def search_instances():
    """Search for instances of all studies."""
    return _search(a.INSTANCE)


@blp.route("/api/studies/<study>/series", methods=["GET"])
@blp.doc(**_DOC)
def search_study_series(study):
    """Search for series of one study."""
    return _search(a.SERIES, study)


@blp.route("/api/studies/<study>/instances", methods=["GET"])
@blp.doc(**_DOC)
def search_study_instances(study):
    """Search for instances of one study."""
    return _search(a.INSTANCE, study)


@blp.route("/api/studies/<study>/series/<series>/instances", methods=["GET"])
@blp.doc(**_DOC)
def search_series_instances(study, series):
    """Search for instances of one series."""
    return _search(a.INSTANCE, study, series)


@blp.route("/qidors/studies", methods=["GET"])
@blp.doc(**_DOC)
def dicomcloud_search_studies():
    """DICOMcloud alias of GET /api/studies."""
    return _search(a.STUDY)


@blp.route("/qidors/series", methods=["GET"])
@blp.doc(**_DOC)
def dicomcloud_search_series():
    """DICOMcloud alias of GET /api/series."""
    return _search(a.SERIES)


@blp.route("/qidors/instances", methods=["GET"])
@blp.doc(**_DOC)
def dicomcloud_search_instances():
    """DICOMcloud alias of GET /api/instances."""
    return _search(a.INSTANCE)


@blp.route("/qidors/studies/<study>/series", methods=["GET"])
@blp.doc(**_DOC)
def dicomcloud_search_study_series(study):
    """DICOMcloud alias of GET /api/studies/{study}/series."""
    return _search(a.SERIES, study)


@blp.route("/qidors/studies/<study>/instances", methods=["GET"])
@blp.doc(**_DOC)
def dicomcloud_search_study_instances(study):
    """DICOMcloud alias of GET /api/studies/{study}/instances."""
    return _search(a.INSTANCE, study)


@blp.route("/qidors/studies/<study>/series/<series>/instances", methods=["GET"])
@blp.doc(**_DOC)
def dicomcloud_search_series_instances(study, series):
    """DICOMcloud alias of GET /api/studies/{study}/series/{series}/instances."""
    return _search(a.INSTANCE, study, series)
