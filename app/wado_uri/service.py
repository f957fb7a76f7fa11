"""WADO-URI (PS3.18 9, "Retrieve DICOM Instance" of the URI service) without Flask.

``parse_request(args)`` checks the query parameters (400 naming the parameter); ``retrieve(ctx, request,
accept)`` finds the object (404), chooses the media type from ``contentType`` (q-values allowed), the
object's kind and the Accept header (406 when none can be produced), and answers a ``Reply``:

- ``application/dicom``: the stored bytes streamed as they are when nothing changes, else a temp file
  transcoded through the same seam as WADO-RS (``app.codec.transcode``) and/or de-identified with the
  server's profile (``anonymize=yes``);
- ``image/jpeg`` (default for images), ``image/png``, ``image/gif``: one frame (``image/gif`` of a
  multi-frame image without ``frameNumber``: all frames, animated) rendered by the same code as
  WADO-RS ``/rendered`` (``app.codec.stored.render_frames`` -> ``app.codec.render.render_frame``), with
  window, rows/columns, region, quality, annotation and a Grayscale Softcopy Presentation State;
- Structured Reports: ``text/html`` (default), ``text/plain`` (``app.codec.sr_text``), ``text/xml`` (the
  PS3.19 Native DICOM Model of the stored metadata);
- Encapsulated documents: their own media type (e.g. ``application/pdf``, the default for them);
- Video (MPEG-2, MPEG-4 AVC/H.264, HEVC transfer syntaxes): ``video/mpeg`` or ``video/mp4`` (default).
"""
from __future__ import annotations

import codecs
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Mapping

from app.anonymize import DeidentificationError, deidentify_file
from app.codec import documents
from app.codec import presentation_state as ps
from app.codec import render as rendering
from app.codec import sr_text
from app.codec import stored
from app.codec import transcode as tc
from app.codec.instance import BULK_BASE_TOKEN
from app.codec.native_xml import to_xml
from app.dicomweb import media
from app.dicomweb import negotiation as n
from app.dicomweb.reply import Reply
from app.dicomweb.uids import is_uid
from app.errors import BadRequest, NotAcceptable, NotFound
from app.index import retrieve as index

log = logging.getLogger(__name__)

DICOM = media.DICOM
IMAGE_TYPES = list(n.RENDERED_TYPES)              # image/jpeg (default), image/png, image/gif
SR_TYPES = ["text/html", "text/plain", "text/xml"]
ENCAPSULATED_DOCUMENT = "00420011"
MIME_OF_DOCUMENT = "00420012"
PATIENT_IDENTITY_REMOVED = "00120062"
MAX_SIZE = 8192                                   # rows / columns upper bound (as WADO-RS viewports)
MAX_ANIMATED_FRAMES = 1000                        # frames of one animated GIF
FRAME_TIME = "00181063"

# The parameters of PS3.18 Table 9.1-? (URI service), in the order the standard lists them.
PARAMETERS = ("requestType", "studyUID", "seriesUID", "objectUID", "contentType", "charset", "anonymize",
              "annotation", "rows", "columns", "region", "windowCenter", "windowWidth", "frameNumber",
              "imageQuality", "presentationUID", "presentationSeriesUID", "transferSyntax")
# Parameters that only make sense for application/dicom, and those that only make sense for images.
DICOM_ONLY = ("anonymize", "transferSyntax")
IMAGE_ONLY = ("annotation", "rows", "columns", "region", "windowCenter", "windowWidth", "frameNumber",
              "imageQuality", "presentationUID", "presentationSeriesUID")


@dataclass
class UriContext:
    engine: object
    storage: object
    temp_dir: str
    deidentifier: object
    base: str                      # WADO-RS root, for BulkDataURIs in text/xml (no trailing slash)


@dataclass(frozen=True)
class UriRequest:
    study: str
    series: str
    sop: str
    content_type: str | None = None
    charset: str | None = None
    anonymize: bool = False
    annotations: tuple[str, ...] = ()
    rows: int | None = None
    columns: int | None = None
    region: tuple[float, float, float, float] | None = None
    window: rendering.Window | None = None
    frame_number: int | None = None
    quality: int | None = None
    presentation: tuple[str, str] | None = None      # (presentationSeriesUID, presentationUID)
    transfer_syntax: str | None = None
    given: tuple[str, ...] = ()                      # the optional parameters present, by standard name


# ---- parameters ---------------------------------------------------------------------------------------

def _arguments(args: Mapping[str, str]) -> dict[str, str]:
    """Standard names -> values; names match case-insensitively (DICOMcloud clients vary); an empty value
    counts as absent."""
    canonical = {name.lower(): name for name in PARAMETERS}
    found: dict[str, str] = {}
    for key in args.keys():
        name = canonical.get(key.lower())
        if name is None or name in found:
            continue
        value = args.get(key)
        if value is not None and value.strip() != "":
            found[name] = value.strip()
    return found


def _uid(found: dict, name: str) -> str:
    value = found.get(name)
    if value is None:
        raise BadRequest(f"{name} is required")
    if not is_uid(value):
        raise BadRequest(f"{name} {value[:80]!r} is not a valid UID")
    return value


def _positive(found: dict, name: str, most: int | None = None) -> int | None:
    text = found.get(name)
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise BadRequest(f"{name}={text[:40]!r} is not a positive integer")
    value = int(text)
    if most is not None and value > most:
        raise BadRequest(f"{name}={value} is larger than {most}")
    return value


def _number(found: dict, name: str) -> float | None:
    text = found.get(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"{name}={text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise BadRequest(f"{name}={text[:40]!r} is not a finite number")
    return value


def _region(found: dict) -> tuple[float, float, float, float] | None:
    text = found.get("region")
    if text is None:
        return None
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        raise BadRequest(f"region={text[:80]!r}: expected x1,y1,x2,y2 normalised to 0.0..1.0")
    x1, y1, x2, y2 = values
    if x1 >= x2 or y1 >= y2:
        raise BadRequest(f"region={text[:80]!r}: the top left corner (x1,y1) must be above and left of the "
                         "bottom right one (x2,y2)")
    return x1, y1, x2, y2


def parse_request(args: Mapping[str, str]) -> UriRequest:
    """The WADO-URI query parameters (PS3.18 9.1.2); BadRequest naming the parameter when one is missing,
    malformed or contradicts another. Unknown parameters are ignored (PS3.18 8.3.1)."""
    found = _arguments(args)
    request_type = found.get("requestType")
    if request_type is None:
        raise BadRequest("requestType is required (requestType=WADO)")
    if request_type != "WADO":
        raise BadRequest(f"requestType={request_type[:40]!r} is not supported: only WADO")
    study, series, sop = _uid(found, "studyUID"), _uid(found, "seriesUID"), _uid(found, "objectUID")

    dicom_given = [name for name in DICOM_ONLY if name in found]
    image_given = [name for name in IMAGE_ONLY if name in found]
    if dicom_given and image_given:
        raise BadRequest(f"{dicom_given[0]} (application/dicom only) cannot be combined with "
                         f"{image_given[0]} (rendered images only)")
    content_type = found.get("contentType")
    if content_type is not None:
        ranges = media.parse_accept(content_type)
        if not any(media.parse_media_type(part) for part in content_type.split(",")):
            raise BadRequest(f"contentType={content_type[:80]!r} names no media type")
        if dicom_given and not any(media.matches(r, DICOM) for r in ranges):
            raise BadRequest(f"{dicom_given[0]} applies to contentType=application/dicom only, not "
                             f"{content_type[:80]}")
        if image_given and all(r.type == DICOM for r in ranges):
            raise BadRequest(f"{image_given[0]} applies to rendered images only, not application/dicom")

    anonymize = found.get("anonymize")
    if anonymize is not None and anonymize.lower() != "yes":
        raise BadRequest(f"anonymize={anonymize[:40]!r}: the only value is yes")

    try:
        annotations = rendering.parse_annotation(found.get("annotation"))
    except rendering.RenderError as exc:
        raise BadRequest(f"annotation: {exc}") from None

    center, width = _number(found, "windowCenter"), _number(found, "windowWidth")
    window = None
    if (center is None) != (width is None):
        missing = "windowWidth" if width is None else "windowCenter"
        present = "windowCenter" if width is None else "windowWidth"
        raise BadRequest(f"{present} needs {missing}")
    if center is not None:
        if width < 1:
            raise BadRequest(f"windowWidth={width:g} must be at least 1")
        window = rendering.Window(center, width)

    presentation = None
    p_uid, p_series = found.get("presentationUID"), found.get("presentationSeriesUID")
    if (p_uid is None) != (p_series is None):
        raise BadRequest("presentationUID and presentationSeriesUID go together: "
                         + ("presentationSeriesUID" if p_series is None else "presentationUID")
                         + " is missing")
    if p_uid is not None:
        presentation = (_uid(found, "presentationSeriesUID"), _uid(found, "presentationUID"))
        if window is not None:
            raise BadRequest("windowCenter/windowWidth cannot be combined with presentationUID (the "
                             "presentation state sets the window)")

    quality = _positive(found, "imageQuality")
    if quality is not None and quality > 100:
        raise BadRequest(f"imageQuality={quality} is outside 1..100")

    transfer_syntax = found.get("transferSyntax")
    if transfer_syntax is not None and transfer_syntax != n.ANY_TS and not is_uid(transfer_syntax):
        raise BadRequest(f"transferSyntax {transfer_syntax[:80]!r} is not a valid UID")

    return UriRequest(study=study, series=series, sop=sop, content_type=content_type,
                      charset=found.get("charset"), anonymize=anonymize is not None, annotations=annotations,
                      rows=_positive(found, "rows", MAX_SIZE), columns=_positive(found, "columns", MAX_SIZE),
                      region=_region(found), window=window, frame_number=_positive(found, "frameNumber"),
                      quality=quality, presentation=presentation, transfer_syntax=transfer_syntax,
                      given=tuple(name for name in PARAMETERS[4:] if name in found))


# ---- what the object can be ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Kind:
    name: str                   # image, video, sr, document, other
    offers: list[str]           # media types it can be produced as, the default first


def _kind(row, metadata: dict) -> _Kind:
    stored_ts = row.transfer_syntax_uid
    if stored_ts in documents.VIDEO_TYPES:
        return _Kind("video", [documents.VIDEO_TYPES[stored_ts], DICOM])
    if stored.has_pixels(row):
        return _Kind("image", IMAGE_TYPES + [DICOM])
    if sr_text.is_structured_report(row.sop_class_uid, metadata):
        return _Kind("structured report", SR_TYPES + [DICOM])
    if ENCAPSULATED_DOCUMENT in metadata:
        mime = (metadata.get(MIME_OF_DOCUMENT, {}).get("Value") or ["application/octet-stream"])[0]
        return _Kind("encapsulated document", [str(mime).strip().lower(), DICOM])
    return _Kind("non-image object", [DICOM])


def _choose(request: UriRequest, kind: _Kind, accept: str | None) -> str:
    offers = list(kind.offers)
    if request.anonymize or request.transfer_syntax:
        offers = [DICOM]
    elif any(name in request.given for name in IMAGE_ONLY):
        if kind.name != "image":
            name = next(name for name in IMAGE_ONLY if name in request.given)
            raise BadRequest(f"{name} applies to images; object {request.sop} is a {kind.name}")
        offers = [offer for offer in offers if offer != DICOM]
    admitted = [offer for offer in offers if media.choose(accept, [offer])]
    if request.content_type is None:
        chosen = admitted[0] if admitted else None
    else:
        chosen = media.choose(request.content_type, admitted)
    if chosen is None:
        asked = f"contentType={request.content_type}" if request.content_type else "the default"
        if accept and admitted != offers:
            asked += f" with Accept: {accept}"
        raise NotAcceptable(f"{asked}: object {request.sop} ({kind.name}) is available as "
                            + ", ".join(offers))
    return chosen


# ---- charset ------------------------------------------------------------------------------------------

def _charsets(text: str | None) -> list[tuple[str, str]]:
    """(label as the client wrote it, Python codec) per charset of a list, best first (q-values allowed,
    q=0 refused, unknown names skipped; ``*`` is UTF-8)."""
    if not text:
        return [("utf-8", "utf-8")]
    found: dict[str, str] = {}
    for item in media.parse_accept(",".join(f"x/{part.strip()}" for part in text.split(",") if part.strip())):
        label = item.type[2:]
        if label == "*":
            found.setdefault("utf-8", "utf-8")
            continue
        try:
            codec = codecs.lookup(label).name
        except LookupError:
            continue
        if codec not in found.values():
            found[label] = codec
    return list(found.items())


def _encode(text: str, charset_param: str | None, html: bool) -> tuple[bytes, str]:
    """(``text`` encoded, charset label) in the first charset of the list that can hold it (HTML: any
    charset, through character references); 406 when none can."""
    tried = _charsets(charset_param)
    for label, codec in tried:
        try:
            return text.encode(codec, errors="xmlcharrefreplace" if html else "strict"), label
        except (UnicodeError, LookupError):
            continue
    raise NotAcceptable(f"charset={charset_param}: the text cannot be encoded in "
                        + (", ".join(label for label, _ in tried) if tried
                           else "any charset named (none is known)"))


# ---- the request --------------------------------------------------------------------------------------

def retrieve(ctx: UriContext, request: UriRequest, accept: str | None = None) -> Reply:
    found = index.find_instances(ctx.engine, request.study, request.series, request.sop,
                                    with_metadata=True)
    if not found:
        raise NotFound(f"object {request.sop} of series {request.series} of study {request.study} is not "
                       "stored")
    row = found[0]
    metadata = stored.metadata_of(row)
    kind = _kind(row, metadata)
    chosen = _choose(request, kind, accept)
    if chosen == DICOM:
        return _dicom(ctx, request, row, metadata)
    if chosen in IMAGE_TYPES:
        return _image(ctx, request, row, metadata, chosen)
    if kind.name == "structured report":
        return _structured_report(ctx, request, row, metadata, chosen)
    if kind.name == "video":
        return _payload(ctx, row, chosen, documents.video_stream)
    return _payload(ctx, row, chosen, documents.encapsulated_document)


def _read(ctx: UriContext, row, *, stop_before_pixels: bool = False):
    with ctx.storage.open(row.blob_key) as handle:
        try:
            return documents.read(handle, stop_before_pixels=stop_before_pixels)
        except documents.DocumentError as exc:
            raise NotAcceptable(f"object {row.sop_instance_uid}: {exc}") from None


def _sized(body: bytes, content_type: str, headers: dict | None = None) -> Reply:
    return Reply([body], content_type, 200, dict(headers or {}, **{"Content-Length": str(len(body))}))


# ---- application/dicom --------------------------------------------------------------------------------

def _dicom(ctx: UriContext, request: UriRequest, row, metadata: dict) -> Reply:
    stored_ts = row.transfer_syntax_uid
    has_pixels = stored.has_pixels(row)
    wanted = request.transfer_syntax
    if wanted in (None, ""):
        target = stored_ts if stored_ts in n.LOSSY or stored_ts in documents.VIDEO_TYPES else n.EXPLICIT_LE
    elif wanted == n.ANY_TS:
        target = stored_ts
    else:
        target = wanted
        if target not in n.DICOM_TRANSFER_SYNTAXES and target != stored_ts:
            raise NotAcceptable(f"transferSyntax {target} is not a transfer syntax of application/dicom "
                                "(PS3.18 Table 8.7.3-2)")
    if not has_pixels and target not in n.NATIVE:
        # A compressed syntax applies to pixel data; objects without pixels go out uncompressed.
        target = stored_ts if stored_ts in (n.EXPLICIT_LE, n.IMPLICIT_LE) else n.EXPLICIT_LE
    if target != stored_ts:
        reason = tc.transcode_reason(stored_ts, target, has_pixels=has_pixels, info=stored.row_info(row))
        if reason:
            raise NotAcceptable(f"transferSyntax {target}: {reason}")
    # An object de-identified on store is not de-identified again (its UIDs would be mapped twice).
    already = (metadata.get(PATIENT_IDENTITY_REMOVED, {}).get("Value") or [""])[0] == "YES"
    deidentify = request.anonymize and not already
    if target == stored_ts and not deidentify:
        headers = {"Content-Disposition": f'attachment; filename="{row.sop_instance_uid}.dcm"'}
        if row.blob_size is not None:
            headers["Content-Length"] = str(row.blob_size)
        return Reply(ctx.storage.iter_range(row.blob_key, 0, None), DICOM, 200, headers)
    path, sop_uid = _prepared_file(ctx, row, target, deidentify)
    # The file name is the UID the body carries (a de-identified object's new one, never the original).
    headers = {"Content-Disposition": f'attachment; filename="{sop_uid}.dcm"',
               "Content-Length": str(os.path.getsize(path))}
    return Reply(stored.TempFileBody(path), DICOM, 200, headers)


def _prepared_file(ctx: UriContext, row, target: str, deidentify: bool) -> tuple[str, str]:
    """(path, SOP Instance UID) of a temp copy of the object in ``target`` syntax, de-identified when asked;
    the caller streams and deletes it. Done before answering: a codec or profile failure is a 406, not a
    cut body."""
    if target != row.transfer_syntax_uid:
        with ctx.storage.open(row.blob_key) as source:
            try:
                path = tc.transcode_file(source, target, ctx.temp_dir)
            except tc.TranscodeError as exc:
                raise NotAcceptable(f"object {row.sop_instance_uid}: {exc}") from None
    else:
        fd, path = tempfile.mkstemp(prefix="wadouri-", suffix=".dcm", dir=ctx.temp_dir)
        with os.fdopen(fd, "wb") as out, ctx.storage.open(row.blob_key) as source:
            shutil.copyfileobj(source, out, stored.CHUNK)
    sop_uid = row.sop_instance_uid
    if deidentify:
        try:
            sop_uid = deidentify_file(path, ctx.deidentifier).sop_instance_uid or "deidentified"
        except DeidentificationError as exc:
            stored.remove_file(path)
            log.error("object %s cannot be de-identified: %s", row.sop_instance_uid, exc.message)
            raise NotAcceptable(f"object {row.sop_instance_uid} cannot be de-identified: {exc.message}") \
                from None
        except BaseException:
            stored.remove_file(path)
            raise
    return path, sop_uid


# ---- images -------------------------------------------------------------------------------------------

def _presentation(ctx: UriContext, request: UriRequest, number: int):
    p_series, p_uid = request.presentation
    rows = index.find_by_sop(ctx.engine, p_series, p_uid)
    if not rows:
        raise NotFound(f"presentation state {p_uid} of series {p_series} is not stored")
    gsps = _read(ctx, rows[0])
    try:
        effects = ps.effects_for(gsps, request.sop, number)
    except ps.PresentationStateError as exc:
        raise BadRequest(f"presentationUID: {exc}") from None
    if not ps.references(gsps, request.series, request.sop):
        raise BadRequest(f"presentationUID: presentation state {p_uid} does not reference object "
                         f"{request.sop} of series {request.series}")
    return effects


def _image(ctx: UriContext, request: UriRequest, row, metadata: dict, media_type: str) -> Reply:
    count = row.number_of_frames or 1
    if media_type == "image/gif" and request.frame_number is None and count > 1:
        # A multi-frame image as image/gif without frameNumber: every frame, animated (PS3.18 rendered
        # multi-frame media type). The presentation state's effects are those for frame 1.
        if count > MAX_ANIMATED_FRAMES:
            raise NotAcceptable(f"object {request.sop} has {count} frames: more than "
                                f"{MAX_ANIMATED_FRAMES} are not animated; ask for one with frameNumber")
        numbers = list(range(1, count + 1))
    else:
        numbers = [request.frame_number or 1]
        stored.check_frames(row, numbers)
    effects = _presentation(ctx, request, numbers[0]) if request.presentation else None
    size = (request.rows, request.columns) if request.rows or request.columns else None
    images = [image for _, image in stored.render_frames(
        ctx.storage, row, numbers, media_type, metadata=metadata, window=request.window,
        quality=request.quality, annotations=request.annotations, presentation=effects, region=request.region,
        size=size)]
    if len(images) == 1:
        return _sized(images[0], media_type)
    frame_time = (metadata.get(FRAME_TIME, {}).get("Value") or [None])[0]
    try:
        return _sized(rendering.animated_gif(images, float(frame_time) if frame_time else None), media_type)
    except (rendering.RenderError, ValueError, OSError) as exc:
        raise NotAcceptable(f"object {request.sop} cannot be animated: {exc}") from None


# ---- structured reports, documents, video -------------------------------------------------------------

def _structured_report(ctx: UriContext, request: UriRequest, row, metadata: dict, media_type: str) -> Reply:
    if media_type == "text/xml":
        # The PS3.19 Native DICOM Model of the stored metadata (always UTF-8, as its declaration says).
        fragment = {tag: value for tag, value in metadata.items() if tag != "00083002"}
        text = to_xml(_with_base(fragment, ctx.base + "/"))
        return _sized(text, "text/xml; charset=utf-8")
    ds = _read(ctx, row)
    if media_type == "text/plain":
        body, charset = _encode(sr_text.to_text(ds), request.charset, html=False)
    else:
        first = (_charsets(request.charset) or [("utf-8", "utf-8")])[0][0]
        body, charset = _encode(sr_text.to_html(ds, first), request.charset, html=True)
    return _sized(body, f"{media_type}; charset={charset}")


def _with_base(value, base: str):
    if isinstance(value, dict):
        return {key: _with_base(item, base) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_base(item, base) for item in value]
    if isinstance(value, str):
        return value.replace(BULK_BASE_TOKEN, base, 1)
    return value


def _payload(ctx: UriContext, row, media_type: str, extract) -> Reply:
    ds = _read(ctx, row)
    try:
        body = extract(ds)
    except documents.DocumentError as exc:
        raise NotAcceptable(f"object {row.sop_instance_uid}: {exc}") from None
    return _sized(body, media_type)
