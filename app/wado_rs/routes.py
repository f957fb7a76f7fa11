"""WADO-RS routes (PS3.18 10.4): thin HTTP over app/wado_rs/service.py.

Every resource is served under ``/api`` and under DICOMcloud's ``/wadors`` prefix.
"""
from __future__ import annotations

from flask import request
from flask_smorest import Blueprint

from app.dicomweb.uids import require_uid
from app.runtime import current_services, respond, wado_rs_base
from app.wado_rs import service

blp = Blueprint("wado_rs", __name__, description="WADO-RS: retrieve instances, frames, metadata, bulk data, "
                                                 "rendered images (PS3.18 10.4)")

_COMMON = {"400": {"description": "A malformed UID, frame list or query parameter"},
           "404": {"description": "No such study, series, instance or bulk data"},
           "406": {"description": "Accept names nothing this resource can be produced as; the message says "
                                  "why (e.g. a missing codec, or lossy data asked for as lossless)"}}


def _responses(ok: str, **extra) -> dict:
    return {"responses": dict({"200": {"description": ok}}, **_COMMON, **extra)}


_INSTANCES_DOC = _responses(
    'multipart/related; type="application/dicom" (one Part-10 object per part). Accept '
    '`transfer-syntax=*` for the stored bytes; the default is Explicit VR Little Endian; RLE Lossless, '
    'JPEG-LS Lossless and JPEG 2000 Lossless are produced on request. `Accept: application/zip` gives a ZIP '
    'archive of the Part-10 files instead.')
_FRAMES_DOC = _responses(
    'multipart/related of application/octet-stream (uncompressed) or image/jpeg, image/jls, image/jp2, '
    'image/jpx, image/jphc, image/dicom-rle with a matching transfer-syntax; one part per frame.')
_METADATA_DOC = _responses(
    'application/dicom+json array (default), or multipart/related; type="application/dicom+xml". Large '
    'binary values are BulkDataURIs. ETag / If-None-Match supported.',
    **{"304": {"description": "Unchanged"}})
_BULK_DOC = _responses(
    'The value as multipart/related; type="application/octet-stream" (or a single application/octet-stream '
    'body when asked); encapsulated Pixel Data as its frames. Range requests are answered with 206.',
    **{"206": {"description": "Partial content (Range)"}, "416": {"description": "Range outside the value"}})
_RENDERED_DOC = _responses(
    'image/jpeg (default), image/png or image/gif; several frames or instances as multipart/related. Query '
    'parameters (PS3.18 8.3.5): window=center,width[,linear|linear-exact|sigmoid], '
    'viewport=vw,vh[,sx,sy,sw,sh], quality=1..100, annotation=patient,technique.')
_THUMBNAIL_DOC = _responses(
    'A small image/jpeg (or png/gif) of a representative frame (viewport defaults to 128x128).')


def _context() -> service.RetrieveContext:
    services = current_services()
    return service.RetrieveContext(engine=services.engine, storage=services.storage,
                                   temp_dir=str(services.temp_dir), base=wado_rs_base())


def _uids(study, series=None, instance=None):
    require_uid(study, "StudyInstanceUID")
    if series is not None:
        require_uid(series, "SeriesInstanceUID")
    if instance is not None:
        require_uid(instance, "SOPInstanceUID")


def _accept() -> str | None:
    return request.headers.get("Accept")


# ---- instances --------------------------------------------------------------------------------------

@blp.route("/api/studies/<study>", methods=["GET"])
@blp.route("/wadors/studies/<study>", methods=["GET"])
@blp.doc(**_INSTANCES_DOC)
def retrieve_study(study):
    """Retrieve all instances of a study."""
    _uids(study)
    return respond(service.retrieve_instances(_context(), _accept(), study))


@blp.route("/api/studies/<study>/series/<series>", methods=["GET"])
@blp.route("/wadors/studies/<study>/series/<series>", methods=["GET"])
@blp.doc(**_INSTANCES_DOC)
def retrieve_series(study, series):
    """Retrieve all instances of a series."""
    _uids(study, series)
    return respond(service.retrieve_instances(_context(), _accept(), study, series))


@blp.route("/api/studies/<study>/series/<series>/instances/<instance>", methods=["GET"])
@blp.route("/wadors/studies/<study>/series/<series>/instances/<instance>", methods=["GET"])
@blp.doc(**_INSTANCES_DOC)
def retrieve_instance(study, series, instance):
    """Retrieve one instance."""
    _uids(study, series, instance)
    return respond(service.retrieve_instances(_context(), _accept(), study, series, instance))


@blp.route("/api/studies/<study>/series/<series>/instances/<instance>/frames/<frames>", methods=["GET"])
@blp.route("/wadors/studies/<study>/series/<series>/instances/<instance>/frames/<frames>", methods=["GET"])
@blp.doc(**_FRAMES_DOC)
def retrieve_frames(study, series, instance, frames):
    """Retrieve frames of an instance (frame list such as 1,3,5)."""
    _uids(study, series, instance)
    return respond(service.retrieve_frames(_context(), _accept(), study, series, instance, frames))


@blp.route("/api/studies/<study>/series/<series>/instances/<instance>/bulkdata/<path:tag_path>",
           methods=["GET"])
@blp.route("/wadors/studies/<study>/series/<series>/instances/<instance>/bulkdata/<path:tag_path>",
           methods=["GET"])
@blp.doc(**_BULK_DOC)
def retrieve_bulkdata(study, series, instance, tag_path):
    """Retrieve a bulk data value named by a BulkDataURI of the metadata."""
    _uids(study, series, instance)
    return respond(service.retrieve_bulkdata(_context(), _accept(), request.headers.get("Range"), study,
                                              series, instance, tag_path))


# ---- metadata ---------------------------------------------------------------------------------------

def _metadata(study, series=None, instance=None):
    _uids(study, series, instance)
    return respond(service.retrieve_metadata(_context(), _accept(), request.headers.get("If-None-Match"),
                                              study, series, instance))


@blp.route("/api/studies/<study>/metadata", methods=["GET"])
@blp.route("/wadors/studies/<study>/metadata", methods=["GET"])
@blp.doc(**_METADATA_DOC)
def retrieve_study_metadata(study):
    """Metadata of all instances of a study."""
    return _metadata(study)


@blp.route("/api/studies/<study>/series/<series>/metadata", methods=["GET"])
@blp.route("/wadors/studies/<study>/series/<series>/metadata", methods=["GET"])
@blp.doc(**_METADATA_DOC)
def retrieve_series_metadata(study, series):
    """Metadata of all instances of a series."""
    return _metadata(study, series)


@blp.route("/api/studies/<study>/series/<series>/instances/<instance>/metadata", methods=["GET"])
@blp.route("/wadors/studies/<study>/series/<series>/instances/<instance>/metadata", methods=["GET"])
@blp.doc(**_METADATA_DOC)
def retrieve_instance_metadata(study, series, instance):
    """Metadata of one instance."""
    return _metadata(study, series, instance)


# ---- rendered and thumbnail -------------------------------------------------------------------------

def _rendered(kind, study, series=None, instance=None, frames=None):
    _uids(study, series, instance)
    params = service.parse_render_params(request.args)
    function = service.retrieve_rendered if kind == "rendered" else service.retrieve_thumbnail
    return respond(function(_context(), _accept(), params, study, series, instance, frames))


@blp.route("/api/studies/<study>/rendered", methods=["GET"])
@blp.route("/wadors/studies/<study>/rendered", methods=["GET"])
@blp.doc(**_RENDERED_DOC)
def retrieve_study_rendered(study):
    """Rendered images of all instances of a study."""
    return _rendered("rendered", study)


@blp.route("/api/studies/<study>/series/<series>/rendered", methods=["GET"])
@blp.route("/wadors/studies/<study>/series/<series>/rendered", methods=["GET"])
@blp.doc(**_RENDERED_DOC)
def retrieve_series_rendered(study, series):
    """Rendered images of all instances of a series."""
    return _rendered("rendered", study, series)


@blp.route("/api/studies/<study>/series/<series>/instances/<instance>/rendered", methods=["GET"])
@blp.route("/wadors/studies/<study>/series/<series>/instances/<instance>/rendered", methods=["GET"])
@blp.doc(**_RENDERED_DOC)
def retrieve_instance_rendered(study, series, instance):
    """Rendered image of an instance (multipart of its frames when it has several)."""
    return _rendered("rendered", study, series, instance)


@blp.route("/api/studies/<study>/series/<series>/instances/<instance>/frames/<frames>/rendered",
           methods=["GET"])
@blp.route("/wadors/studies/<study>/series/<series>/instances/<instance>/frames/<frames>/rendered",
           methods=["GET"])
@blp.doc(**_RENDERED_DOC)
def retrieve_frames_rendered(study, series, instance, frames):
    """Rendered images of frames of an instance."""
    return _rendered("rendered", study, series, instance, frames)


@blp.route("/api/studies/<study>/thumbnail", methods=["GET"])
@blp.route("/wadors/studies/<study>/thumbnail", methods=["GET"])
@blp.doc(**_THUMBNAIL_DOC)
def retrieve_study_thumbnail(study):
    """Thumbnail of a study."""
    return _rendered("thumbnail", study)


@blp.route("/api/studies/<study>/series/<series>/thumbnail", methods=["GET"])
@blp.route("/wadors/studies/<study>/series/<series>/thumbnail", methods=["GET"])
@blp.doc(**_THUMBNAIL_DOC)
def retrieve_series_thumbnail(study, series):
    """Thumbnail of a series."""
    return _rendered("thumbnail", study, series)


@blp.route("/api/studies/<study>/series/<series>/instances/<instance>/thumbnail", methods=["GET"])
@blp.route("/wadors/studies/<study>/series/<series>/instances/<instance>/thumbnail", methods=["GET"])
@blp.doc(**_THUMBNAIL_DOC)
def retrieve_instance_thumbnail(study, series, instance):
    """Thumbnail of an instance."""
    return _rendered("thumbnail", study, series, instance)


@blp.route("/api/studies/<study>/series/<series>/instances/<instance>/frames/<frames>/thumbnail",
           methods=["GET"])
@blp.route("/wadors/studies/<study>/series/<series>/instances/<instance>/frames/<frames>/thumbnail",
           methods=["GET"])
@blp.doc(**_THUMBNAIL_DOC)
def retrieve_frames_thumbnail(study, series, instance, frames):
    """Thumbnail of a frame of an instance."""
    return _rendered("thumbnail", study, series, instance, frames)
