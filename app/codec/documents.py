"""Non-image payloads of stored objects for WADO-URI: encapsulated documents, video streams, SR datasets
and presentation states, read from a Part-10 stream with pydicom."""
from __future__ import annotations

import io
from typing import BinaryIO

import pydicom
from pydicom.encaps import generate_fragments, parse_basic_offsets

# Video transfer syntaxes (PS3.5 A.4.5-A.4.8) -> the media type of the encapsulated stream (PS3.18
# rendered media types: MPEG-2 as video/mpeg; MPEG-4 AVC/H.264 and HEVC/H.265 as video/mp4).
VIDEO_TYPES = {
    "1.2.840.10008.1.2.4.100": "video/mpeg",       # MPEG2 Main Profile / Main Level
    "1.2.840.10008.1.2.4.100.1": "video/mpeg",
    "1.2.840.10008.1.2.4.101": "video/mpeg",       # MPEG2 Main Profile / High Level
    "1.2.840.10008.1.2.4.101.1": "video/mpeg",
    "1.2.840.10008.1.2.4.102": "video/mp4",        # MPEG-4 AVC/H.264 High Profile / Level 4.1
    "1.2.840.10008.1.2.4.102.1": "video/mp4",
    "1.2.840.10008.1.2.4.103": "video/mp4",
    "1.2.840.10008.1.2.4.103.1": "video/mp4",
    "1.2.840.10008.1.2.4.104": "video/mp4",
    "1.2.840.10008.1.2.4.104.1": "video/mp4",
    "1.2.840.10008.1.2.4.105": "video/mp4",
    "1.2.840.10008.1.2.4.105.1": "video/mp4",
    "1.2.840.10008.1.2.4.106": "video/mp4",
    "1.2.840.10008.1.2.4.106.1": "video/mp4",
    "1.2.840.10008.1.2.4.107": "video/mp4",        # HEVC/H.265 Main Profile / Level 5.1
    "1.2.840.10008.1.2.4.108": "video/mp4",        # HEVC/H.265 Main 10 Profile / Level 5.1
}


class DocumentError(ValueError):
    """The stored object does not hold what its attributes promise."""


def read(handle: BinaryIO, *, stop_before_pixels: bool = False) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(handle, stop_before_pixels=stop_before_pixels)
    except Exception as exc:
        raise DocumentError(f"cannot read the stored object: {type(exc).__name__}: {exc}") from exc


def encapsulated_document(ds: pydicom.Dataset) -> bytes:
    """Encapsulated Document (0042,0011) without its padding: Encapsulated Document Length (0042,0015) when
    present, else a PDF's trailing NUL pad byte removed."""
    if "EncapsulatedDocument" not in ds:
        raise DocumentError("the object has no Encapsulated Document")
    data = bytes(ds.EncapsulatedDocument or b"")
    length = ds.get("EncapsulatedDocumentLength", None)
    if length is not None and 0 <= int(length) <= len(data):
        return data[:int(length)]
    if str(ds.get("MIMETypeOfEncapsulatedDocument", "")) == "application/pdf" and data.endswith(b"\x00"):
        data = data[:-1]
    return data


def video_stream(ds: pydicom.Dataset) -> bytes:
    """The video bitstream: all fragments of the encapsulated Pixel Data, concatenated (PS3.5 A.4.5)."""
    if "PixelData" not in ds:
        raise DocumentError("the object has no Pixel Data")
    buffer = io.BytesIO(ds.PixelData)
    try:
        parse_basic_offsets(buffer)
        return b"".join(generate_fragments(buffer))
    except Exception as exc:
        raise DocumentError(f"the encapsulated video stream cannot be read: {type(exc).__name__}: {exc}") \
            from exc
