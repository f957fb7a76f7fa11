"""WADO-URI routes (PS3.18 9): thin HTTP over app/wado_uri/service.py.

``GET /api/wadouri`` and DICOMcloud's ``/wadouri``, every parameter in the query string.
"""
from __future__ import annotations

from flask import request
from flask_smorest import Blueprint

from app.runtime import current_services, respond, wado_rs_base
from app.wado_uri import service

blp = Blueprint("wado_uri", __name__, description="WADO-URI: retrieve a DICOM object, a rendered image, a "
                                                  "report or a document by its UIDs (PS3.18 9)")


def _param(name: str, description: str, required: bool = False, kind: str = "string") -> dict:
    return {"in": "query", "name": name, "required": required, "description": description,
            "schema": {"type": kind}}


_PARAMETERS = [
    _param("requestType", "Must be `WADO`.", True),
    _param("studyUID", "Study Instance UID of the object.", True),
    _param("seriesUID", "Series Instance UID of the object.", True),
    _param("objectUID", "SOP Instance UID of the object.", True),
    _param("contentType", "Media type(s) wanted, comma-separated with optional q-values. Images: "
                          "`image/jpeg` (default), `image/png`, `image/gif`; structured reports: `text/html` "
                          "(default), `text/plain`, `text/xml`; encapsulated documents: their own type (e.g. "
                          "`application/pdf`, default); video: `video/mpeg` or `video/mp4` (default); every "
                          "object: `application/dicom` (the default for other objects). 406 when none fits."),
    _param("charset", "Character set(s) for text answers (text/html, text/plain), comma-separated with "
                      "optional q-values; default utf-8. 406 when no listed charset can hold a text/plain "
                      "answer (HTML uses character references). Ignored for other media types."),
    _param("anonymize", "`yes`: the object is de-identified with the server's PS3.15 profile "
                        "(app:anonymizerOptions). application/dicom only."),
    _param("annotation", "`patient` and/or `technique`, comma-separated: text burned into the image."),
    _param("rows", "Height of the image in pixels (1..8192); the aspect ratio is kept.", kind="integer"),
    _param("columns", "Width of the image in pixels (1..8192); with rows, the image fits within both.",
           kind="integer"),
    _param("region", "x1,y1,x2,y2: the part of the image to show, normalised 0.0..1.0 from the top left."),
    _param("windowCenter", "Window center in modality units (needs windowWidth).", kind="number"),
    _param("windowWidth", "Window width, at least 1 (needs windowCenter).", kind="number"),
    _param("frameNumber", "The frame of a multi-frame image to render (from 1; default 1; image/gif without "
                          "it: all frames, animated).", kind="integer"),
    _param("imageQuality", "JPEG quality 1..100 (default 90).", kind="integer"),
    _param("presentationUID", "SOP Instance UID of a stored Grayscale Softcopy Presentation State to apply "
                              "(VOI LUT / window, Modality LUT, Presentation LUT shape, displayed area, "
                              "flip and rotation). Needs presentationSeriesUID; excludes windowCenter."),
    _param("presentationSeriesUID", "Series Instance UID of the presentation state."),
    _param("transferSyntax", "Transfer syntax UID of the application/dicom answer (default Explicit VR "
                             "Little Endian; lossy stored data comes as stored); converted through the same "
                             "codecs as WADO-RS, 406 with the reason when not possible."),
]

_DOC = {
    "parameters": _PARAMETERS,
    "responses": {
        "200": {"description": "The object as application/dicom, a rendered image (image/jpeg, image/png, "
                               "image/gif), a report (text/html, text/plain, text/xml), an encapsulated "
                               "document (e.g. application/pdf) or a video stream (video/mpeg, video/mp4)"},
        "400": {"description": "A required parameter is missing, a value is malformed, or two parameters "
                               "contradict each other (the message names the parameter)"},
        "404": {"description": "No such object (or presentation state)"},
        "406": {"description": "The object cannot be produced as any contentType asked for (or in the "
                               "transfer syntax or charset asked for); the message says why"},
    },
}


@blp.route("/api/wadouri", methods=["GET"])
@blp.route("/wadouri", methods=["GET"])
@blp.doc(**_DOC)
def wado_uri():
    """Retrieve one object by its UIDs (WADO-URI)."""
    parsed = service.parse_request(request.args)
    services = current_services()
    ctx = service.UriContext(engine=services.engine, storage=services.storage,
                             temp_dir=str(services.temp_dir), deidentifier=services.deidentifier,
                             base=wado_rs_base())
    reply = service.retrieve(ctx, parsed, request.headers.get("Accept"))
    return respond(reply)
