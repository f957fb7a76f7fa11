"""De-identify a Part-10 file in place: read the header with pydicom, apply the profile, write it back.

The file keeps its transfer syntax and encoding. Pixel Data is never loaded: the de-identified header is
written with pydicom, then the original Pixel Data element (native, or encapsulated with its fragments) is
copied after it byte for byte from the original file. Only when something other than one Pixel Data element
follows the header (rare: e.g. elements after Pixel Data) or the transfer syntax is deflated does the whole
object go through pydicom (large values still read lazily). The new file replaces the original only when it
is complete.
"""
from __future__ import annotations

import os
import struct

import pydicom
from pydicom.errors import InvalidDicomError

from app.anonymize.profile import DeidentificationReport, Deidentifier

DEFER_SIZE = 16 * 1024
DEFLATED = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"}
PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_READ_ERRORS = (InvalidDicomError, EOFError, OSError, ValueError, struct.error, NotImplementedError, KeyError,
                TypeError, AttributeError)


class DeidentificationError(Exception):
    """The file could not be de-identified; ``unreadable`` when it is not a readable DICOM object at all."""

    def __init__(self, message: str, *, unreadable: bool = False):
        super().__init__(message)
        self.message = message
        self.unreadable = unreadable


def deidentify_file(path: str, deidentifier: Deidentifier) -> DeidentificationReport:
    temporary = path + ".deid"
    try:
        with open(path, "rb") as handle:
            try:
                ds = pydicom.dcmread(handle, stop_before_pixels=True, defer_size=DEFER_SIZE)
            except _READ_ERRORS as exc:
                raise DeidentificationError(f"not a readable DICOM Part-10 object: {exc}", unreadable=True) \
                    from exc
            header_end = handle.tell()
        tail = _pixel_element_range(path, header_end, ds)
        if tail is None:        # not one plain Pixel Data element after the header: the whole object
            try:
                ds = pydicom.dcmread(path, defer_size=DEFER_SIZE)
            except _READ_ERRORS as exc:
                raise DeidentificationError(f"not a readable DICOM Part-10 object: {exc}", unreadable=True) \
                    from exc
            _check_complete(ds, path)
        report = deidentifier.deidentify(ds)
        ds.save_as(temporary, enforce_file_format=True)
        if tail is not None and tail[1] > tail[0]:
            with open(path, "rb") as source, open(temporary, "ab") as target:
                source.seek(tail[0])
                _copy(source, target, tail[1] - tail[0])
    except DeidentificationError:
        _remove(temporary)
        raise
    except Exception as exc:
        _remove(temporary)
        raise DeidentificationError(f"de-identification failed: {type(exc).__name__}: {exc}") from exc
    os.replace(temporary, path)
    return report


def _pixel_element_range(path: str, start: int, ds) -> tuple[int, int] | None:
    """(start, end) of the one Pixel Data element that ends the file, (start, start) when nothing follows
    the header, None when the object has to be rewritten whole."""
    size = os.path.getsize(path)
    transfer_syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if transfer_syntax in DEFLATED:
        return None
    if start >= size:
        return (start, start)
    implicit, little = ds.original_encoding
    explicit = not implicit
    order = "<" if little else ">"
    with open(path, "rb") as handle:
        handle.seek(start)
        head = handle.read(12)
        if len(head) < 8:
            return None
        group, element = struct.unpack(order + "HH", head[:4])
        if (group, element) not in PIXEL_TAGS:
            return None
        if explicit:
            if head[4:6] not in LONG_VRS or len(head) < 12:
                return None
            length = struct.unpack(order + "L", head[8:12])[0]
            value_start = start + 12
        else:
            length = struct.unpack(order + "L", head[4:8])[0]
            value_start = start + 8
        if length != 0xFFFFFFFF:
            end = value_start + length
        else:
            end = _end_of_fragments(handle, value_start, size)
            if end is None:
                return None
    if end > size:
        raise DeidentificationError(f"the object is truncated: Pixel Data needs {end} bytes, the file has "
                                    f"{size}", unreadable=True)
    return (start, end) if end == size else None


def _check_complete(ds, path: str) -> None:
    """pydicom stops quietly at the end of a file: a value running past it means the upload was cut (a
    rewrite must not turn a cut upload into a well-formed file)."""
    if str(getattr(ds.file_meta, "TransferSyntaxUID", "")) in DEFLATED:
        return
    size = os.path.getsize(path)
    for tag in list(ds.keys())[-3:]:
        raw = ds.get_item(tag, keep_deferred=True)
        tell, length = getattr(raw, "value_tell", None), getattr(raw, "length", None)
        if tell is not None and length not in (None, 0xFFFFFFFF) and tell + length > size:
            raise DeidentificationError(f"the object is truncated: element {tag} needs {tell + length} "
                                        f"bytes, the file has {size}", unreadable=True)


def _end_of_fragments(handle, position: int, size: int) -> int | None:
    """Walk the items of encapsulated Pixel Data (always little endian) to its Sequence Delimitation Item."""
    while position + 8 <= size:
        handle.seek(position)
        group, element, length = struct.unpack("<HHL", handle.read(8))
        position += 8
        if (group, element) == (0xFFFE, 0xE0DD):
            return position
        if (group, element) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF:
            return None
        position += length
    return size + 1         # the delimiter is missing: cut off


def _copy(source, target, count: int) -> None:
    while count > 0:
        chunk = source.read(min(count, 1 << 20))
        if not chunk:
            raise EOFError("the file ended inside Pixel Data")
        target.write(chunk)
        count -= len(chunk)


def _remove(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)
