"""Pixel-side reads of a stored instance, shared by WADO-RS and WADO-URI (no Flask, no SQL).

An index row (from app.index.retrieve) says where an instance's bytes are; the blob store is handed in as
an argument (anything with ``open``, ``iter_range`` and ``read_range``). Here: the frames of a row (ranged
reads at the offsets recorded at STOW time, or one parse of the object when the layout does not locate
them), the attributes rendering reads as a pydicom Dataset (converted from the stored DICOM JSON), and
rendering of frames through ``app.codec.render`` -- the one rendering path both services use.
"""
from __future__ import annotations

import json
import os
from typing import Iterator

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.jsonrep import convert_to_python_number

from app.codec import render as rendering
from app.codec import transcode as tc
from app.dicomweb import negotiation as n
from app.errors import BadRequest, NotAcceptable

PIXEL_DATA_PATHS = ("7FE00010", "7FE00008", "7FE00009")
# Bulk values the renderer needs (palette and VOI/Modality LUT data); other bulk data stays unread.
RENDER_BULK = {"00281201", "00281202", "00281203", "00281221", "00281222", "00281223", "00283006"}
# The top-level attributes rendering reads (app.codec.render and the pydicom functions it calls:
# apply_modality_lut, apply_voi_lut, apply_color_lut): all of group 0028 (image pixel module, rescale and
# Modality LUT, window and VOI LUT, palette color LUTs) and Pixel Presentation; only these become the
# header Dataset, since converting every attribute of the DICOM JSON costs more than rendering a small image.
RENDER_GROUP = "0028"
RENDER_TAGS = frozenset({"00089205"})
# What the annotation text shows (app.codec.render.annotation_lines), added when annotation is asked for.
ANNOTATION_TAGS = frozenset({"00080005", "00080020", "00080060", "00081030", "00100010", "00100020",
                             "00200011", "00200013"})
# VRs whose DICOM JSON values are the element's values as they are (numbers made int or float the way
# pydicom's JSON reader does): such attributes are converted directly, without pydicom's per-attribute
# JSON machinery (same elements, a third of the time).
PLAIN_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "SH", "SL", "SS",
                       "ST", "SV", "TM", "UC", "UI", "UL", "UR", "US", "UT", "UV"})
SWAP_SIZES = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}
CHUNK = 256 * 1024


def metadata_of(row) -> dict:
    """The DICOM JSON stored for the row ({} when missing or unreadable)."""
    try:
        return json.loads(row.metadata_json)
    except (TypeError, ValueError, AttributeError):
        return {}


def pixel_info(row, metadata: dict) -> tc.PixelInfo:
    info = tc.pixel_info_from_json(metadata)
    if info is None:
        raise BadRequest(f"instance {row.sop_instance_uid} has no pixel data (no frames)")
    return info


def layout_of(row) -> dict | None:
    """The stored layout (frame and bulk data offsets) of the row; None when missing or unreadable."""
    if not row.layout_json:
        return None
    try:
        layout = json.loads(row.layout_json)
    except ValueError:
        return None
    return layout if isinstance(layout, dict) else None


def frame_layout(row, layout: dict | None = None) -> list | None:
    """The frames' (offset, length) ranges; ``layout``: the row's layout when already parsed."""
    if layout is None:
        layout = layout_of(row)
    return layout.get("frames") if layout is not None else None


def has_pixels(row) -> bool:
    if not (row.rows and row.columns):
        return False
    if row.pixel_data_offset is not None or row.layout_json is None:
        return True
    return frame_layout(row) is not None


def row_info(row) -> tc.PixelInfo | None:
    """The pixel attributes the index keeps (enough to negotiate; the full module is in the metadata)."""
    if not (row.rows and row.columns):
        return None
    bits = row.bits_allocated or 16
    return tc.PixelInfo(rows=row.rows, columns=row.columns, bits_allocated=bits, bits_stored=bits,
                        number_of_frames=row.number_of_frames or 1)


def check_frames(row, numbers: list[int]) -> int:
    """400 when a frame number is beyond the instance's NumberOfFrames; returns the frame count."""
    count = row.number_of_frames or 1
    wrong = [number for number in numbers if number > count]
    if wrong:
        raise BadRequest(f"frame {wrong[0]} does not exist: instance {row.sop_instance_uid} has {count} "
                         f"frame{'s' if count != 1 else ''}")
    return count


def iter_file(path: str, remove: bool = True) -> Iterator[bytes]:
    """A file's bytes in chunks; the file is deleted afterwards (also when the reader stops early)."""
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk
    finally:
        if remove:
            remove_file(path)


class TempFileBody:
    """A response body streaming a temp file and deleting it when done, also when the response is closed
    before the first chunk was asked for (a HEAD request, a client gone early): WSGI servers call close()."""

    def __init__(self, path: str):
        self.path = path

    def __iter__(self) -> Iterator[bytes]:
        return iter_file(self.path)

    def close(self) -> None:
        remove_file(self.path)


def remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class FrameSource:
    """Stored bytes of single frames: ranged reads through the stored layout, or (deflated files, 1-bit
    data) one parse of the object for all requested frames."""

    def __init__(self, storage, row, info_loader, numbers: list[int], layout: dict | None = None):
        self.storage, self.row = storage, row
        self._info_loader, self._info = info_loader, None
        self.layout = frame_layout(row, layout)
        self.stored_ts = row.transfer_syntax_uid
        self._parsed: dict[int, bytes] | None = None
        # Big endian: 8-bit OW values are swapped in 16-bit words; pydicom knows these rules, so parse.
        if self.layout is None or len(self.layout) < (row.number_of_frames or 1) or \
                self.stored_ts == n.EXPLICIT_BE or \
                (self.stored_ts in n.NATIVE and (row.bits_allocated or 8) % 8):
            with storage.open(row.blob_key) as handle:
                try:
                    self.stored_ts, _, frames = tc.frames_from_file(handle, sorted(set(numbers)))
                except tc.TranscodeError as exc:
                    raise BadRequest(f"instance {row.sop_instance_uid}: {exc}") from None
                except Exception as exc:
                    raise NotAcceptable(f"the frames of instance {row.sop_instance_uid} cannot be read: "
                                        f"{type(exc).__name__}: {exc}") from None
            self._parsed = dict(zip(sorted(set(numbers)), frames))

    @property
    def info(self) -> tc.PixelInfo:
        """The pixel module, from the stored metadata: read only when a frame is converted."""
        if self._info is None:
            self._info = self._info_loader()
        return self._info

    def chunks(self, number: int) -> Iterator[bytes]:
        """The stored bytes of frame ``number`` in chunks (no conversion)."""
        if self._parsed is not None:
            yield self._parsed[number]
            return
        for offset, length in self.layout[number - 1]:
            yield from self.storage.iter_range(self.row.blob_key, offset, length)

    def data(self, number: int) -> bytes:
        """The stored bytes of frame ``number`` in one piece, read with one ranged read: a native frame
        is one range; the fragments of an encapsulated frame lie one after the other, 8-byte item headers
        apart, so their span is read at once and the headers left out."""
        if self._parsed is not None:
            return self._parsed[number]
        ranges = self.layout[number - 1]
        if len(ranges) <= 1:
            return self._read(*ranges[0]) if ranges else b""
        start = ranges[0][0]
        end, total = start, 0
        for offset, length in ranges:
            if offset < end:                       # not in file order: one read per range
                return b"".join(self._read(offset, length) for offset, length in ranges)
            end, total = offset + length, total + length
        if end - start > total + 8 * len(ranges):  # more than item headers in between
            return b"".join(self._read(offset, length) for offset, length in ranges)
        span = memoryview(self._read(start, end - start))
        return b"".join(span[offset - start:offset - start + length] for offset, length in ranges)

    def _read(self, offset: int, length: int) -> bytes:
        return self.storage.read_range(self.row.blob_key, offset, length)


def header_dataset(storage, row, metadata: dict, *, annotations: bool = False, complete: bool = False,
                   layout: dict | None = None):
    """The attributes rendering reads as a pydicom Dataset (LUT bulk data read by offset): group 0028 and
    Pixel Presentation, plus the annotation text's attributes with ``annotations``; with ``complete``
    every attribute but Pixel Data. ``layout``: the row's layout when already parsed."""
    if layout is None:
        layout = layout_of(row)
    bulk = (layout or {}).get("bulk", {})

    def resolve(tag: str, vr: str, uri: str) -> bytes:
        path = uri.rsplit("/bulkdata/", 1)[-1]
        if path.split("/")[-1] not in RENDER_BULK:
            return b""
        place = bulk.get(path)
        if place and place[1] > 0:
            data = storage.read_range(row.blob_key, place[0], place[1])
        else:
            with storage.open(row.blob_key) as handle:
                data = tc.element_bytes(handle, path)
        if row.transfer_syntax_uid == n.EXPLICIT_BE and vr in SWAP_SIZES:
            data = tc.swap_bytes(data, SWAP_SIZES[vr])
        return data

    if complete:
        trimmed = {tag: value for tag, value in metadata.items() if tag not in PIXEL_DATA_PATHS}
    else:
        trimmed = {tag: value for tag, value in metadata.items()
                   if tag.startswith(RENDER_GROUP) or tag in RENDER_TAGS
                   or (annotations and tag in ANNOTATION_TAGS)}
    return dataset_from_json(trimmed, resolve)


def dataset_from_json(metadata: dict, bulk_reader) -> Dataset:
    """``pydicom.Dataset.from_json(metadata, bulk_reader)``, the same elements added in the same order,
    faster: strings and numbers (PLAIN_VRS) become DataElements here, the way pydicom's JSON reader makes
    them; every other attribute (sequences, person names, bulk data, empty values) goes through pydicom,
    one at a time."""
    dataset = Dataset()
    for tag, element in metadata.items():
        if type(element) is dict and len(element) == 2 and element.get("vr") in PLAIN_VRS:
            values = element.get("Value")
            if type(values) is list and values and all(type(v) in (str, int, float) for v in values):
                vr = element["vr"]
                value = values[0] if len(values) == 1 else list(values)
                dataset.add(DataElement(int(tag, 16), vr, convert_to_python_number(value, vr)))
                continue
        # The bulk data reader is only ever called for a BulkDataURI (a sequence may hold one); leave it
        # out otherwise: pydicom inspects the reader's signature for every attribute it converts.
        needs_reader = type(element) is not dict or "BulkDataURI" in element or element.get("vr") == "SQ"
        for converted in tc.dataset_from_json({tag: element}, bulk_reader if needs_reader else None):
            dataset.add(converted)
    return dataset


def render_frames(storage, row, numbers: list[int], media_type: str, *, metadata: dict | None = None,
                  **options) -> Iterator[tuple[int, bytes]]:
    """(frame number, encoded image) for each of ``numbers``: decode with the codec plugins, then
    ``render.render_frame(arr, header=..., media_type=..., frame=number, color_space=..., **options)``
    (``color_space``: what the decoder handed back, RGB for compressed YBR; the header still says YBR).

    The row needs ``metadata_json`` unless ``metadata`` (the parsed DICOM JSON of the row) is given. 406
    when the stored syntax has no decoder or a frame cannot be shown.
    """
    if metadata is None:
        metadata = metadata_of(row)
    info = pixel_info(row, metadata)
    reason = tc.decoder_reason(row.transfer_syntax_uid)
    if reason:
        raise NotAcceptable(reason)
    layout = layout_of(row)
    source = FrameSource(storage, row, lambda: info, numbers, layout)
    header = header_dataset(storage, row, metadata, annotations=bool(options.get("annotations")),
                            layout=layout)
    for number in numbers:
        try:
            arr, color_space = tc.decode_frame(source.data(number), source.stored_ts, info)
            yield number, rendering.render_frame(arr, header=header, media_type=media_type, frame=number,
                                                 color_space=color_space, **options)
        except (tc.TranscodeError, rendering.RenderError, ValueError) as exc:
            raise NotAcceptable(f"instance {row.sop_instance_uid} frame {number} cannot be rendered: {exc}") \
                from None
