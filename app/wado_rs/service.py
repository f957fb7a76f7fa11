"""WADO-RS (PS3.18 10.4) without Flask: find the instances, negotiate, and stream the answer.

Each function returns a ``Reply`` (status, content type, headers and a lazy body of byte chunks): the
route turns it into a streamed Response. Everything that can be refused is checked before the first byte
is produced (404 for unknown UIDs, 400 for bad parameters, 406 when the answer cannot be produced), so a
failure never shows up as a truncated body.

What makes it fast:
- instances are streamed straight from storage in chunks when their stored syntax is acceptable;
- metadata is the concatenation of the DICOM JSON stored at STOW time (no DICOM parsing here);
- frames and bulk data are ranged reads at offsets recorded at STOW time (frame 900 costs what frame 1 does).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Iterator

from app.codec import render as rendering
from app.codec import stored
from app.codec import transcode as tc
from app.codec.instance import BULK_BASE_TOKEN
from app.codec.native_xml import to_xml
from app.dicomweb import media
from app.dicomweb import negotiation as n
from app.dicomweb import zipstream
from app.dicomweb.multipart import multipart_length, new_boundary, write_multipart
from app.dicomweb.reply import Reply
from app.errors import BadRequest, NotAcceptable, NotFound, RangeNotSatisfiable
from app.index import retrieve

log = logging.getLogger(__name__)

PIXEL_DATA_PATHS = stored.PIXEL_DATA_PATHS
_SWAP_SIZES = stored.SWAP_SIZES
THUMBNAIL_SIZE = 128


@dataclass
class RetrieveContext:
    engine: object
    storage: object
    temp_dir: str
    base: str                  # WADO-RS root, e.g. http://host/api (no trailing slash)


@dataclass(frozen=True)
class RenderParams:
    window: rendering.Window | None = None
    viewport: rendering.Viewport | None = None
    quality: int | None = None
    annotations: tuple[str, ...] = ()


def parse_render_params(args) -> RenderParams:
    """The PS3.18 8.3.5 query parameters of rendered resources (``args``: a mapping); 400 when malformed."""
    try:
        return RenderParams(window=rendering.parse_window(args.get("window")),
                            viewport=rendering.parse_viewport(args.get("viewport")),
                            quality=rendering.parse_quality(args.get("quality")),
                            annotations=rendering.parse_annotation(args.get("annotation")))
    except rendering.RenderError as exc:
        raise BadRequest(str(exc)) from None


_FRAME_LIST = re.compile(r"^\s*[0-9]+\s*(,\s*[0-9]+\s*)*$")


def parse_frame_list(text: str) -> list[int]:
    """``1,3,5`` -> [1, 3, 5]; 400 for anything else (frame numbers start at 1)."""
    if not text or len(text) > 10000 or not _FRAME_LIST.match(text):
        raise BadRequest(f"frame list {text[:80]!r} is not a comma-separated list of frame numbers")
    numbers = [int(part) for part in text.split(",")]
    if any(number < 1 for number in numbers):
        raise BadRequest("frame numbers start at 1")
    return numbers


def _rows(ctx: RetrieveContext, study: str, series: str | None, sop: str | None, *,
          with_metadata: bool = False) -> list:
    rows = retrieve.find_instances(ctx.engine, study, series, sop, with_metadata=with_metadata)
    if not rows:
        raise NotFound(_not_found_message(study, series, sop))
    return rows


def _not_found_message(study: str, series: str | None, sop: str | None) -> str:
    if sop is not None:
        return f"instance {sop} of series {series} of study {study} is not stored"
    if series is not None:
        return f"series {series} of study {study} is not stored"
    return f"study {study} is not stored"


def _instance_url(ctx: RetrieveContext, row) -> str:
    return (f"{ctx.base}/studies/{row.study_instance_uid}/series/{row.series_instance_uid}"
            f"/instances/{row.sop_instance_uid}")


_has_pixels = stored.has_pixels
_row_info = stored.row_info
_iter_file = stored.iter_file
_remove = stored.remove_file
_metadata_of = stored.metadata_of
_pixel_info = stored.pixel_info
_frame_layout = stored.frame_layout
_check_frames = stored.check_frames


def _multipart_type(inner: str, boundary: str) -> str:
    return f'multipart/related; type="{inner}"; boundary={boundary}'


# ---- instances (study, series, instance) ------------------------------------------------------------

def retrieve_instances(ctx: RetrieveContext, accept: str | None, study: str, series: str | None = None,
                       sop: str | None = None) -> Reply:
    """multipart/related of application/dicom: pass-through when the stored syntax is acceptable."""
    rows = _rows(ctx, study, series, sop)
    plan = []
    container = None
    for row in rows:
        stored = row.transfer_syntax_uid
        has_pixels = _has_pixels(row)
        info = _row_info(row)
        choice = n.negotiate_dicom(
            accept, stored,
            lambda source, target: None if not has_pixels and target not in n.NATIVE
            else tc.transcode_reason(source, target, has_pixels=has_pixels, info=info))
        container = container or choice.media_type
        target = choice.transfer_syntax
        if not has_pixels and target not in n.NATIVE:
            # A compressed syntax applies to pixel data; objects without pixels go out uncompressed.
            target = stored if stored in (n.EXPLICIT_LE, n.IMPLICIT_LE) else n.EXPLICIT_LE
        plan.append((row, target))
    # The first instance that needs transcoding is converted before answering: when its pixel data cannot
    # be decoded after all (a codec plugin that refuses the stream), that is a 406 instead of a cut body.
    first = next(((index, row, target) for index, (row, target) in enumerate(plan)
                  if target != row.transfer_syntax_uid), None)
    ready: dict[int, str] = {}
    if first is not None:
        index, row, target = first
        try:
            ready[index] = _transcode(ctx, row, target)
        except tc.TranscodeError as exc:
            raise NotAcceptable(f"instance {row.sop_instance_uid}: {exc}") from None
    boundary = new_boundary()

    def part_headers(row, target):
        return {"Content-Type": f"{media.DICOM}; transfer-syntax={target}",
                "Content-Location": _instance_url(ctx, row)}

    def parts():
        try:
            for index, (row, target) in enumerate(plan):
                yield part_headers(row, target), _instance_bytes(ctx, row, target, ready.get(index))
        finally:
            for path in ready.values():          # gone already, unless the client left before its part
                _remove(path)

    if container == zipstream.ZIP:
        members = ((f"{row.study_instance_uid}/{row.series_instance_uid}/{row.sop_instance_uid}.dcm", body)
                   for (row, _), (_, body) in zip(plan, parts()))
        return Reply(zipstream.zip_stream(members), zipstream.ZIP, 200,
                     {"Content-Disposition": f'attachment; filename="{(sop or series or study)}.zip"'})
    headers = {}
    if first is None:
        # Stored bytes only: the length is known, so the body goes out with Content-Length instead of
        # chunked transfer coding (cheaper for clients, and what a static file server does).
        headers["Content-Length"] = str(multipart_length(
            boundary, [(part_headers(row, target), row.blob_size) for row, target in plan]))
    return Reply(write_multipart(boundary, parts()), _multipart_type(media.DICOM, boundary), 200, headers)


def _transcode(ctx: RetrieveContext, row, target: str) -> str:
    with ctx.storage.open(row.blob_key) as source:
        return tc.transcode_file(source, target, ctx.temp_dir)


def _instance_bytes(ctx: RetrieveContext, row, target: str, path: str | None = None) -> Iterator[bytes]:
    if target == row.transfer_syntax_uid:
        yield from ctx.storage.iter_range(row.blob_key, 0, None, chunk_size=1 << 20)
        return
    if path is None:
        try:
            path = _transcode(ctx, row, target)
        except tc.TranscodeError as exc:
            # Checked before streaming; a later file whose pixel data lies about itself ends the body here.
            log.error("instance %s: %s", row.sop_instance_uid, exc)
            raise
    yield from _iter_file(path)


# ---- frames -----------------------------------------------------------------------------------------

def _frame_reason(info: tc.PixelInfo):
    def reason(source: str, target: str) -> str | None:
        return tc.transcode_reason(source, target, has_pixels=True, info=info)
    return reason


def _passes_through(stored: str, target: str) -> bool:
    return target == stored or (target == n.EXPLICIT_LE and stored in (n.EXPLICIT_LE, n.IMPLICIT_LE,
                                                                        n.DEFLATED_LE))


def _frame_body(source: stored.FrameSource, number: int, target: str) -> Iterator[bytes]:
    stored = source.stored_ts
    if _passes_through(stored, target):
        yield from source.chunks(number)
        return
    try:
        yield tc.convert_frame(source.data(number), stored, target, source.info)
    except tc.TranscodeError as exc:
        log.error("instance %s frame %d: %s", source.row.sop_instance_uid, number, exc)
        raise


def retrieve_frames(ctx: RetrieveContext, accept: str | None, study: str, series: str, sop: str,
                    frame_list: str) -> Reply:
    numbers = parse_frame_list(frame_list)
    (row,) = _rows(ctx, study, series, sop)
    if not _has_pixels(row):
        raise BadRequest(f"instance {sop} has no pixel data (no frames)")
    _check_frames(row, numbers)
    # Negotiate from the indexed pixel attributes; the full pixel module (from the stored metadata, which
    # can be megabytes for enhanced multi-frame objects) is read only when frames are converted.
    choice = n.negotiate_pixels(accept, row.transfer_syntax_uid, _frame_reason(_row_info(row)),
                                media.OCTET_STREAM)

    def load_info() -> tc.PixelInfo:
        (meta,) = retrieve.find_metadata(ctx.engine, study, series, sop) or [None]
        return _pixel_info(row, _metadata_of(meta) if meta is not None else {})

    source = stored.FrameSource(ctx.storage, row, load_info, numbers)
    if source.stored_ts != row.transfer_syntax_uid and choice.transfer_syntax == row.transfer_syntax_uid:
        choice = n.Choice(choice.media_type, source.stored_ts, choice.multipart)
    boundary = new_boundary()
    url = _instance_url(ctx, row)
    first: list[bytes] | None = None
    if not _passes_through(source.stored_ts, choice.transfer_syntax):
        # Convert the first frame before answering: a frame the codec refuses is a 406, not a cut body.
        try:
            first = [tc.convert_frame(source.data(numbers[0]), source.stored_ts, choice.transfer_syntax,
                                      source.info)]
        except tc.TranscodeError as exc:
            raise NotAcceptable(f"instance {sop} frame {numbers[0]}: {exc}") from None

    def parts():
        for index, number in enumerate(numbers):
            headers = {"Content-Type": f"{choice.media_type}; transfer-syntax={choice.transfer_syntax}",
                       "Content-Location": f"{url}/frames/{number}"}
            body = first if index == 0 and first is not None else \
                _frame_body(source, number, choice.transfer_syntax)
            yield headers, body

    return Reply(write_multipart(boundary, parts()), _multipart_type(choice.media_type, boundary))


# ---- bulk data --------------------------------------------------------------------------------------

def _element_at(metadata: dict, path: str) -> dict | None:
    """The DICOM JSON element at a bulk data path like ``54000100/0/54001010``."""
    parts = path.split("/")
    current: dict | None = metadata
    try:
        for index in range(0, len(parts) - 1, 2):
            current = current[parts[index]]["Value"][int(parts[index + 1])]
        return current[parts[-1]]
    except (KeyError, IndexError, ValueError, TypeError):
        return None


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, length) of a single ``bytes=`` range (RFC 9110 14.1.2); None = whole value."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*", header)
    if not match or (not match.group(1) and not match.group(2)):
        return None        # several ranges or another unit: the whole value (a server may ignore Range)
    first, last = match.group(1), match.group(2)
    if not first:          # suffix range: the last N bytes
        length = min(int(last), size)
        if length == 0:
            raise RangeNotSatisfiable("empty suffix range", headers={"Content-Range": f"bytes */{size}"})
        return size - length, length
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiable(f"range {header.strip()} lies outside the {size} bytes of the value",
                                  headers={"Content-Range": f"bytes */{size}"})
    return start, end - start + 1


def retrieve_bulkdata(ctx: RetrieveContext, accept: str | None, range_header: str | None, study: str,
                      series: str, sop: str, path: str) -> Reply:
    (row,) = _rows(ctx, study, series, sop, with_metadata=True)
    path = path.strip("/").upper()
    metadata = _metadata_of(row)
    element = _element_at(metadata, path)
    if element is None or "BulkDataURI" not in element:
        raise NotFound(f"instance {sop} has no bulk data at {path}")
    location = element["BulkDataURI"].replace(BULK_BASE_TOKEN, ctx.base + "/", 1)
    layout = json.loads(row.layout_json) if row.layout_json else None
    place = (layout or {}).get("bulk", {}).get(path)
    stored = row.transfer_syntax_uid

    if path in PIXEL_DATA_PATHS and stored not in n.NATIVE:
        # Encapsulated Pixel Data: its frames, as for /frames (one part each).
        count = row.number_of_frames or 1
        every_frame = ",".join(str(number) for number in range(1, count + 1))
        return retrieve_frames(ctx, accept, study, series, sop, every_frame)

    choice = n.negotiate_bulk(accept)
    vr = element.get("vr", "OB")
    if place is not None and place[1] >= 0:
        offset, size = place
        big_endian = stored == n.EXPLICIT_BE
        value_range = parse_range(range_header, size)
        start, length = value_range if value_range else (0, size)

        def body() -> Iterator[bytes]:
            if big_endian and vr in _SWAP_SIZES:
                unit = _SWAP_SIZES[vr]
                data = ctx.storage.read_range(row.blob_key, offset, size)
                yield tc.swap_bytes(data, unit)[start:start + length]
            else:
                yield from ctx.storage.iter_range(row.blob_key, offset + start, length)
    else:
        data = _bulk_from_file(ctx, row, path)
        size = len(data)
        value_range = parse_range(range_header, size)
        start, length = value_range if value_range else (0, size)

        def body() -> Iterator[bytes]:
            yield data[start:start + length]

    part_type = media.OCTET_STREAM
    if path in PIXEL_DATA_PATHS:
        part_type += f"; transfer-syntax={n.EXPLICIT_LE}"
    headers = {"Content-Location": location}
    status = 200
    if value_range is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    if not choice.multipart:
        headers["Accept-Ranges"] = "bytes"
        headers["Content-Length"] = str(length)
        return Reply(body(), part_type, status, headers)
    boundary = new_boundary()
    return Reply(write_multipart(boundary, [(dict(headers, **{"Content-Type": part_type}), body())]),
                 _multipart_type(media.OCTET_STREAM, boundary), status,
                 {"Content-Location": location})


def _bulk_from_file(ctx: RetrieveContext, row, path: str) -> bytes:
    """A bulk value the layout does not locate (deflated files): parse the object once."""
    with ctx.storage.open(row.blob_key) as handle:
        try:
            return tc.element_bytes(handle, path)
        except KeyError:
            raise NotFound(f"instance {row.sop_instance_uid} has no bulk data at {path}") from None
        except tc.TranscodeError as exc:
            raise NotAcceptable(str(exc)) from None


# ---- metadata ---------------------------------------------------------------------------------------

def retrieve_metadata(ctx: RetrieveContext, accept: str | None, if_none_match: str | None, study: str,
                      series: str | None = None, sop: str | None = None) -> Reply:
    """DICOM JSON array (or multipart of NativeDicomModel XML) from the fragments stored at STOW time."""
    chosen = n.negotiate_plain(accept, n.METADATA_TYPES)
    rows = retrieve.find_metadata(ctx.engine, study, series, sop)
    if not rows:
        raise NotFound(_not_found_message(study, series, sop))
    base = ctx.base + "/"
    fragments = [_with_available_syntax(row.metadata_json.replace(BULK_BASE_TOKEN, base),
                                        row.transfer_syntax_uid) for row in rows]
    digest = hashlib.sha1(chosen.encode())
    for fragment in fragments:
        digest.update(fragment.encode("utf-8"))
    etag = f'"{digest.hexdigest()}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if if_none_match and (if_none_match.strip() == "*" or etag in [t.strip().removeprefix("W/")
                                                                   for t in if_none_match.split(",")]):
        return Reply([], chosen, 304, headers)
    if chosen == media.DICOM_XML:
        boundary = new_boundary()
        parts = (({"Content-Type": f"{media.DICOM_XML}; charset=utf-8"}, [to_xml(json.loads(fragment))])
                 for fragment in fragments)
        return Reply(write_multipart(boundary, parts), _multipart_type(media.DICOM_XML, boundary), 200,
                     headers)
    body = ("[" + ",".join(fragments) + "]").encode("utf-8")
    return Reply([body], chosen, 200, dict(headers, **{"Content-Length": str(len(body))}))


def _with_available_syntax(fragment: str, transfer_syntax: str) -> str:
    """Add Available Transfer Syntax UID (0008,3002), the stored syntax: a viewer knows what frames cost."""
    if '"00083002"' in fragment or not fragment.startswith("{"):
        return fragment
    entry = '{"00083002":{"vr":"UI","Value":["' + transfer_syntax + '"]}'
    return entry + ("}" if fragment == "{}" else "," + fragment[1:])


# ---- rendered and thumbnail -------------------------------------------------------------------------

def _render_targets(ctx: RetrieveContext, study: str, series: str | None, sop: str | None,
                    frame_list: str | None) -> list[tuple[object, list[int]]]:
    numbers = parse_frame_list(frame_list) if frame_list is not None else None
    rows = _rows(ctx, study, series, sop, with_metadata=True)
    targets = []
    for row in rows:
        if not _has_pixels(row):
            continue
        if numbers is not None:
            _check_frames(row, numbers)
            targets.append((row, numbers))
        else:
            targets.append((row, list(range(1, (row.number_of_frames or 1) + 1))))
    if not targets:
        what = f"instance {sop}" if sop else (f"series {series}" if series else f"study {study}")
        raise NotAcceptable(f"{what} has no pixel data to render as an image")
    return targets


def _rendered_frames(ctx: RetrieveContext, row, numbers: list[int], media_type: str,
                     params: RenderParams) -> Iterator[tuple[int, bytes]]:
    return stored.render_frames(ctx.storage, row, numbers, media_type, window=params.window,
                                viewport=params.viewport, quality=params.quality,
                                annotations=params.annotations)


def retrieve_rendered(ctx: RetrieveContext, accept: str | None, params: RenderParams, study: str,
                      series: str | None = None, sop: str | None = None,
                      frame_list: str | None = None) -> Reply:
    """One image (a single frame) or multipart/related of images (several frames or instances)."""
    media_type = n.negotiate_plain(accept, n.RENDERED_TYPES)
    targets = _render_targets(ctx, study, series, sop, frame_list)
    if len(targets) == 1 and len(targets[0][1]) == 1:
        row, numbers = targets[0]
        (_, image), = list(_rendered_frames(ctx, row, numbers, media_type, params))
        return Reply([image], media_type, 200, {"Content-Length": str(len(image))})
    # Render the first image before answering, so a frame that cannot be rendered is a 406, not a cut body.
    first_row, first_numbers = targets[0]
    first_iter = _rendered_frames(ctx, first_row, first_numbers, media_type, params)
    first = next(first_iter)
    boundary = new_boundary()

    def parts():
        for index, (row, numbers) in enumerate(targets):
            url = _instance_url(ctx, row)
            frames = _chain_first(first, first_iter) if index == 0 else \
                _rendered_frames(ctx, row, numbers, media_type, params)
            for number, image in frames:
                yield ({"Content-Type": media_type, "Content-Location": f"{url}/frames/{number}/rendered"},
                       [image])

    return Reply(write_multipart(boundary, parts()), _multipart_type(media_type, boundary))


def _chain_first(first, rest):
    yield first
    yield from rest


def retrieve_thumbnail(ctx: RetrieveContext, accept: str | None, params: RenderParams, study: str,
                       series: str | None = None, sop: str | None = None,
                       frame_list: str | None = None) -> Reply:
    """A small rendered image of a representative frame: the middle instance, its middle frame."""
    media_type = n.negotiate_plain(accept, n.RENDERED_TYPES)
    targets = _render_targets(ctx, study, series, sop, frame_list)
    row, numbers = targets[len(targets) // 2]
    number = numbers[0] if frame_list is not None else numbers[len(numbers) // 2]
    if params.viewport is None:
        params = RenderParams(params.window, rendering.Viewport(THUMBNAIL_SIZE, THUMBNAIL_SIZE),
                              params.quality, params.annotations)
    (_, image), = list(_rendered_frames(ctx, row, [number], media_type, params))
    return Reply([image], media_type, 200, {"Content-Length": str(len(image))})
