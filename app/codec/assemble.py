"""Build a Part-10 file from a DICOM JSON dataset plus bulk data parts (STOW-RS metadata + bulk data).

PS3.18 10.5.1: a client may send ``application/dicom+json`` or ``application/dicom+xml`` metadata whose
BulkDataURIs name other parts of the same request (by Content-Location or Content-ID). Compressed pixel data
arrives as a part typed e.g. ``image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50``.
"""
from __future__ import annotations

from typing import Callable

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, UID

from app.codec.instance import InvalidInstance

# Default transfer syntax for a compressed frame media type without a transfer-syntax parameter
# (PS3.18 Table 8.7.3-3 defaults).
FRAME_MEDIA_DEFAULT_SYNTAX = {
    "image/jpeg": "1.2.840.10008.1.2.4.70",
    "image/jls": "1.2.840.10008.1.2.4.80",
    "image/jp2": "1.2.840.10008.1.2.4.90",
    "image/jpx": "1.2.840.10008.1.2.4.92",
    "image/dicom-rle": "1.2.840.10008.1.2.5",
    "image/jphc": "1.2.840.10008.1.2.4.201",
}

BulkResolver = Callable[[str], "tuple[bytes, str | None, str | None]"]
"""uri -> (bytes, media type, transfer-syntax parameter); raises KeyError when no part has that uri."""


def write_part10(dataset_json: dict, resolve_bulk: BulkResolver, path: str) -> None:
    """Write ``dataset_json`` (bulk data resolved through ``resolve_bulk``) as a Part-10 file at ``path``."""
    pixel_syntax: list[str] = []

    def bulk_handler(tag: str, vr: str, uri: str) -> bytes:
        try:
            data, media_type, syntax = resolve_bulk(uri)
        except KeyError:
            raise InvalidInstance(0xA900,
                                  f"BulkDataURI {uri!r} of {tag} names no part of the request") from None
        if tag.upper() == "7FE00010" and media_type and media_type != "application/octet-stream":
            syntax = syntax or FRAME_MEDIA_DEFAULT_SYNTAX.get(media_type)
            if not syntax:
                raise InvalidInstance(0xC000, f"pixel data part has unsupported media type {media_type}")
            pixel_syntax.append(syntax)
            return encapsulate([data])
        if syntax and tag.upper() == "7FE00010" and UID(syntax).is_compressed:
            pixel_syntax.append(syntax)
            return encapsulate([data])
        return data

    meta_json = {k: v for k, v in dataset_json.items() if k.upper().startswith("0002")}
    body_json = {k: v for k, v in dataset_json.items() if not k.upper().startswith("0002")}
    try:
        dataset = Dataset.from_json(body_json, bulk_data_uri_handler=bulk_handler)
    except InvalidInstance:
        raise
    except Exception as exc:
        raise InvalidInstance(0xC000, f"DICOM JSON dataset cannot be read: {exc}") from exc

    sop_class = str(dataset.get("SOPClassUID", "") or "")
    sop_instance = str(dataset.get("SOPInstanceUID", "") or "")
    syntax = pixel_syntax[0] if pixel_syntax else None
    if syntax is None and "00020010" in meta_json:
        syntax = (meta_json["00020010"].get("Value") or [None])[0]
    syntax = UID(syntax or ExplicitVRLittleEndian)
    if syntax.is_compressed and not pixel_syntax:
        syntax = ExplicitVRLittleEndian
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = sop_class
    file_meta.MediaStorageSOPInstanceUID = sop_instance
    file_meta.TransferSyntaxUID = syntax
    file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    dataset.file_meta = file_meta
    try:
        dataset.save_as(path, enforce_file_format=True)
    except Exception as exc:
        raise InvalidInstance(0xC000, f"dataset cannot be written as DICOM: {exc}",
                              sop_class, sop_instance) from exc
