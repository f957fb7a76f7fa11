"""Read an uploaded Part-10 file once and derive everything later requests need.

``inspect_file`` parses the header with large values deferred (never loading pixel data), validates the
identifying attributes, and returns:
- the index record (plain strings and numbers for the four levels; no pydicom types leak out),
- the DICOM JSON metadata of the instance with bulk data replaced by BulkDataURIs,
- the byte layout: where Pixel Data and every other bulk value sit in the file, and each frame's fragments,
  so that metadata, bulk data and frame retrieval never re-parse the file.
"""
from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from app.codec import values as v
from app.index import tables as t

# Values larger than this are bulk data: BulkDataURI in metadata, never inline (PS3.18 8.7.3.3).
BULK_DATA_THRESHOLD = 1024
# Values larger than this are not even read while parsing.
DEFER_SIZE = 16 * 1024
BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
# In stored metadata, BulkDataURIs start with this token; WADO-RS replaces it with its own base URL
# (from app:WadoRsUrl or the request), so the same fragment serves every host name a client uses.
BULK_BASE_TOKEN = "dicomcloud-base:"

PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
DEFLATED = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"}


class InvalidInstance(Exception):
    """The object cannot be stored; ``reason`` is a STOW-RS failure reason code (app/stow/status.py)."""

    def __init__(self, reason: int, message: str, sop_class_uid: str = "", sop_instance_uid: str = ""):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.sop_class_uid = sop_class_uid
        self.sop_instance_uid = sop_instance_uid


@dataclass
class InspectedInstance:
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    patient: dict
    study: dict
    series: dict
    request_attributes: list[dict]
    instance: dict
    metadata_json: str
    layout: dict | None
    warnings: list[str] = field(default_factory=list)


def _get(ds: Dataset, keyword: str):
    """``ds.get(keyword)``, but read straight from the element's bytes when it holds one plain value (the
    common case: no DataElement is built); anything else is left to pydicom as before."""
    raw = ds.get_item(tag_for_keyword(keyword), keep_deferred=True)
    if type(raw) is RawDataElement and raw.VR not in BULK_VRS:
        entry = _raw_json(raw, False)
        if entry is not None:
            values = entry.get("Value")
            if not values:
                return None
            if len(values) == 1:
                return values[0]
    return ds.get(keyword)


def _valid_uid(value) -> bool:
    return bool(value) and UID(str(value)).is_valid


def add_missing_preamble(path: str) -> bool:
    """Give a file that starts straight with its File Meta group the 128-byte preamble and ``DICM``.

    ``pydicom.dcmwrite`` of an in-memory dataset (what dicomweb-client sends) writes no preamble; the
    data set bytes are kept exactly, and the stored blob becomes a regular Part-10 file.
    """
    with open(path, "rb") as handle:
        head = handle.read(132)
    if head[128:132] == b"DICM" or not head.startswith(b"\x02\x00"):
        return False
    temporary = path + ".preamble"
    with open(path, "rb") as source, open(temporary, "wb") as target:
        target.write(b"\x00" * 128 + b"DICM")
        while chunk := source.read(1 << 20):
            target.write(chunk)
    os.replace(temporary, path)
    return True


def inspect_file(path: str) -> InspectedInstance:
    try:
        ds = pydicom.dcmread(path, defer_size=DEFER_SIZE)
    except (InvalidDicomError, EOFError, OSError, ValueError, struct.error, NotImplementedError, KeyError,
            TypeError, AttributeError) as exc:
        raise InvalidInstance(0xC000, f"not a readable DICOM Part-10 object: {exc}") from exc

    sop_class = str(_get(ds, "SOPClassUID") or getattr(ds.file_meta, "MediaStorageSOPClassUID", "") or "")
    sop_instance = str(_get(ds, "SOPInstanceUID") or
                       getattr(ds.file_meta, "MediaStorageSOPInstanceUID", "") or "")
    try:
        _check_complete(ds, path)
        return _inspect(ds, sop_class, sop_instance)
    except InvalidInstance as exc:
        exc.sop_class_uid = exc.sop_class_uid or sop_class
        exc.sop_instance_uid = exc.sop_instance_uid or sop_instance
        raise
    except Exception as exc:  # a malformed value deep in the file: the part fails, the server does not
        raise InvalidInstance(0xC000, f"cannot parse the DICOM object: {type(exc).__name__}: {exc}",
                              sop_class, sop_instance) from exc


def _check_complete(ds: Dataset, path: str) -> None:
    """pydicom stops quietly at the end of a file; a value that runs past it means the upload was cut."""
    if str(getattr(ds.file_meta, "TransferSyntaxUID", "")) in DEFLATED:
        return                       # offsets count inflated bytes; zlib itself reports a cut stream
    size = os.path.getsize(path)
    for tag in reversed(list(ds.keys())[-3:]):
        raw = ds.get_item(tag, keep_deferred=True)
        tell, length = getattr(raw, "value_tell", None), getattr(raw, "length", None)
        if tell is not None and length not in (None, 0xFFFFFFFF) and tell + length > size:
            raise InvalidInstance(0xC000, f"the object is truncated: element {tag} needs {tell + length} "
                                          f"bytes, the file has {size}")


def _inspect(ds: Dataset, sop_class: str, sop_instance: str) -> InspectedInstance:
    transfer_syntax = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "")
    if not transfer_syntax:
        raise InvalidInstance(0xC000, "the file meta information has no Transfer Syntax UID")
    study_uid = str(_get(ds, "StudyInstanceUID") or "")
    series_uid = str(_get(ds, "SeriesInstanceUID") or "")
    # The data set's own SOP Common attributes are Type 1; the file meta copies only help the report.
    missing = [name for name, value in (("SOPClassUID", _get(ds, "SOPClassUID")),
                                        ("SOPInstanceUID", _get(ds, "SOPInstanceUID")),
                                        ("StudyInstanceUID", study_uid), ("SeriesInstanceUID", series_uid))
               if not value]
    if missing:
        raise InvalidInstance(0xA900, "missing required attribute(s): " + ", ".join(missing))
    invalid = [f"{name}={value!r}" for name, value in (("SOPClassUID", sop_class),
                                                       ("SOPInstanceUID", sop_instance),
                                                       ("StudyInstanceUID", study_uid),
                                                       ("SeriesInstanceUID", series_uid),
                                                       ("TransferSyntaxUID", transfer_syntax))
               if not _valid_uid(value)]
    if invalid:
        raise InvalidInstance(0xA900, "invalid UID value(s): " + ", ".join(invalid))
    # A MediaStorageSOPInstanceUID that differs from SOPInstanceUID occurs in real files (pydicom's
    # rtplan.dcm): the dataset's own SOPInstanceUID is authoritative, the file is stored as sent.
    warnings: list[str] = []

    bits_allocated = v.to_int(_get(ds, "BitsAllocated"))
    instance_path = f"studies/{study_uid}/series/{series_uid}/instances/{sop_instance}"
    bulk: dict[str, list[int]] = {}
    candidates: dict[str, tuple[int, list[int], int]] = {}
    metadata = _to_json(ds, [], instance_path, candidates, 0, bits_allocated or 16)
    if transfer_syntax not in DEFLATED and isinstance(ds.filename, str):
        bulk = _verified_offsets(ds.filename, candidates, transfer_syntax)

    # The index columns are read from that DICOM JSON: the header is converted once.
    get = _Attributes(metadata).get
    patient_name = v.text(get("PatientName", first=True), t.PN)
    referring = v.text(get("ReferringPhysicianName", first=True), t.PN)
    study_date = v.normalize_date(get("StudyDate"))
    study_time = v.normalize_time(get("StudyTime"))
    patient = {
        "patient_id": v.text(get("PatientID"), t.LO),
        "issuer_of_patient_id": v.text(get("IssuerOfPatientID"), t.LO),
        "patient_name": patient_name,
        "patient_name_match": v.fold_name(patient_name)[:t.PN],
        "patient_birth_date": v.normalize_date(get("PatientBirthDate")),
        "patient_sex": v.text(get("PatientSex"), t.CS),
    }
    study = {
        "study_instance_uid": study_uid,
        "study_date": study_date,
        "study_time": study_time,
        "study_datetime": v.combine_datetime(study_date, study_time),
        "accession_number": v.text(get("AccessionNumber"), t.SH),
        "study_id": v.text(get("StudyID"), t.SH),
        "study_description": v.text(get("StudyDescription"), t.LO),
        "referring_physician_name": referring,
        "referring_physician_name_match": v.fold_name(referring)[:t.PN],
        "timezone_offset_from_utc": v.text(get("TimezoneOffsetFromUTC"), t.SH),
        "specific_character_set": v.text(get("SpecificCharacterSet"), t.LO),
    }
    series = {
        "series_instance_uid": series_uid,
        "modality": v.text(get("Modality"), t.CS),
        "series_number": v.to_int(get("SeriesNumber")),
        "series_description": v.text(get("SeriesDescription"), t.LO),
        "series_date": v.normalize_date(get("SeriesDate")),
        "series_time": v.normalize_time(get("SeriesTime")),
        "body_part_examined": v.text(get("BodyPartExamined"), t.CS),
        "laterality": v.text(get("Laterality"), t.CS),
        "performed_procedure_step_start_date": v.normalize_date(get("PerformedProcedureStepStartDate")),
        "performed_procedure_step_start_time": v.normalize_time(get("PerformedProcedureStepStartTime")),
        "timezone_offset_from_utc": v.text(get("TimezoneOffsetFromUTC"), t.SH),
    }
    request_attributes = [
        {"requested_procedure_id": v.text(_Attributes(item).get("RequestedProcedureID"), t.SH),
         "scheduled_procedure_step_id": v.text(_Attributes(item).get("ScheduledProcedureStepID"), t.SH)}
        for item in (metadata.get(_TAGS["RequestAttributesSequence"], {}).get("Value") or [])
    ]
    instance = {
        "sop_instance_uid": sop_instance,
        "sop_class_uid": sop_class,
        "instance_number": v.to_int(get("InstanceNumber")),
        "content_date": v.normalize_date(get("ContentDate")),
        "content_time": v.normalize_time(get("ContentTime")),
        "rows": v.to_int(get("Rows")),
        "columns": v.to_int(get("Columns")),
        "bits_allocated": bits_allocated,
        "number_of_frames": v.to_int(get("NumberOfFrames")),
        "transfer_syntax_uid": transfer_syntax,
    }
    layout = None
    if transfer_syntax not in DEFLATED:
        layout = {"bulk": bulk, "frames": _frame_layout(ds, transfer_syntax, instance)}
        pixel = next((bulk[f"{tag:08X}"] for tag in PIXEL_DATA_TAGS if f"{tag:08X}" in bulk), None)
        instance["pixel_data_offset"], instance["pixel_data_length"] = pixel if pixel else (None, None)
    else:
        instance["pixel_data_offset"] = instance["pixel_data_length"] = None
    return InspectedInstance(
        study_instance_uid=study_uid, series_instance_uid=series_uid, sop_instance_uid=sop_instance,
        sop_class_uid=sop_class, transfer_syntax_uid=transfer_syntax, patient=patient, study=study,
        series=series, request_attributes=request_attributes, instance=instance,
        metadata_json=json.dumps(metadata, separators=(",", ":"), ensure_ascii=False),
        layout=layout, warnings=warnings)


_TAGS = {keyword: f"{tag_for_keyword(keyword):08X}" for keyword in (
    "PatientName", "ReferringPhysicianName", "StudyDate", "StudyTime", "PatientID", "IssuerOfPatientID",
    "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyDescription",
    "TimezoneOffsetFromUTC",
    "SpecificCharacterSet", "Modality", "SeriesNumber", "SeriesDescription", "SeriesDate", "SeriesTime",
    "BodyPartExamined", "Laterality", "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
    "RequestAttributesSequence", "RequestedProcedureID", "ScheduledProcedureStepID", "InstanceNumber",
    "ContentDate", "ContentTime", "Rows", "Columns", "NumberOfFrames")}


class _Attributes:
    """Values of a DICOM JSON dataset the way pydicom's ``Dataset.get`` gives them to the index code: a
    single value alone, several as a list, a person name as its ``=``-joined components."""

    def __init__(self, dataset_json: dict):
        self.dataset_json = dataset_json

    def get(self, keyword: str, first: bool = False):
        entry = self.dataset_json.get(_TAGS[keyword])
        values = entry.get("Value") if entry else None
        if not values:
            return None
        if entry.get("vr") == "PN":
            values = ["=".join(name.get(part, "") for part in ("Alphabetic", "Ideographic", "Phonetic")
                               if part in name) for name in values]
        return values[0] if first or len(values) == 1 else values


def _vr_of(raw, tag: int, bits_allocated: int) -> str:
    vr = raw.VR
    if not vr:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "UN"
    if vr in ("OB or OW", "OB/OW"):
        vr = "OW" if bits_allocated > 8 else "OB"
    elif " or " in vr:
        vr = vr.split(" or ")[0]
    return vr


# --- DICOM JSON straight from the encoded bytes, for the VRs of nearly every header element ---------------
# pydicom's route (a DataElement per attribute, then to_json_dict) costs ~10 us per attribute, most of a
# STOW part's parsing. These give exactly what that route gives (tests/unit/codec/test_raw_json.py compares
# them on every bundled file and on edge cases); anything unusual returns None and goes through pydicom.
_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_MULTI_STRING_VRS = {"CS", "AS", "DA", "DT", "TM"}
_TEXT_VRS = {"SH", "LO", "UC"}
_SINGLE_TEXT_VRS = {"ST", "LT", "UT"}
# Character sets under which ASCII bytes decode to the same characters as in the default repertoire.
_ASCII_COMPATIBLE = {"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110", "ISO_IR 144",
                     "ISO_IR 127", "ISO_IR 126", "ISO_IR 138", "ISO_IR 148", "ISO_IR 166", "ISO_IR 192"}
_IS_TEXT = re.compile(r"[ ]*[+-]?[0-9]+[ ]*\Z")
_DS_TEXT = re.compile(r"[ ]*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[ ]*\Z")


def _text_is_plain(ds: Dataset, inherited: bool) -> bool:
    """Whether text values of ``ds`` that are pure ASCII decode as ASCII (its own or an inherited
    Specific Character Set that is ASCII-compatible, without ISO 2022 code extensions)."""
    raw = ds.get_item(0x00080005, keep_deferred=True) if 0x00080005 in ds else None
    if raw is None:
        return inherited
    value = raw.value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        value = "\\".join(str(v) for v in value)
    return value.strip(" \x00") in _ASCII_COMPATIBLE


def _raw_json(raw: RawDataElement, text_plain: bool) -> dict | None:
    vr, data = raw.VR, raw.value
    if not isinstance(data, bytes):
        return None
    number_format = _NUMBER_FORMATS.get(vr)
    if number_format:
        size = struct.calcsize("<" + number_format)     # standard sizes, not the platform's
        if len(data) % size:
            return None
        if not data:
            return {"vr": vr}
        order = "<" if raw.is_little_endian else ">"
        return {"vr": vr, "Value": list(struct.unpack(f"{order}{len(data) // size}{number_format}", data))}
    if not data.isascii() or b"\x1b" in data:
        return None
    text = data.decode("ascii")
    if vr in _MULTI_STRING_VRS:
        values = text.rstrip(" \x00").split("\\")
    elif vr == "UI":
        values = text.rstrip("\x00 ").split("\\")
        if " " in text.rstrip("\x00 "):
            return None         # not a valid UID; pydicom decides what it becomes
    elif vr == "AE":
        values = [item.strip() for item in text.split("\\")]
    elif vr == "UR":
        values = [text.rstrip()]
    elif vr == "IS" or vr == "DS":
        values = (text.rstrip(" \x00") if vr == "IS" else text.strip().rstrip(" \x00")).split("\\")
        if values == [""]:
            return {"vr": vr}
        pattern, number = (_IS_TEXT, int) if vr == "IS" else (_DS_TEXT, float)
        if not all(pattern.match(item) for item in values):
            return None
        return {"vr": vr, "Value": [number(item) for item in values]}
    elif not text_plain:
        return None
    elif vr in _TEXT_VRS:
        values = [item.rstrip("\x00 ") for item in text.split("\\")]
    elif vr in _SINGLE_TEXT_VRS:
        values = [text.rstrip("\x00 ")]
    elif vr == "PN":
        names = []
        for name in data.rstrip(b"\x00 ").decode("ascii").split("\\"):
            components = name.split("=")
            while components and not components[-1]:
                components.pop()
            if not components:
                if name or len(names) or "\\" in text:
                    return None
                return {"vr": vr}
            entry = {"Alphabetic": components[0]}
            if len(components) > 1:
                entry["Ideographic"] = components[1]
            if len(components) > 2:
                entry["Phonetic"] = components[2]
            names.append(entry)
        return {"vr": vr, "Value": names}
    else:
        return None
    if values == [""]:
        return {"vr": vr}
    return {"vr": vr, "Value": values}


def _to_json(ds: Dataset, path: list[str], instance_path: str, candidates: dict, base: int,
             bits_allocated: int, text_plain: bool = True) -> dict:
    """DICOM JSON of ``ds`` without reading deferred bulk values.

    Each bulk value's possible file offsets go into ``candidates`` (pydicom reports offsets inside sequence
    items relative to the item, ``base`` is the item's own position); ``_verified_offsets`` keeps the one
    where the element's tag really is.
    """
    result: dict = {}
    text_plain = _text_is_plain(ds, text_plain)
    for tag in ds.keys():
        raw = ds.get_item(tag, keep_deferred=True)
        if type(raw) is RawDataElement and raw.VR not in BULK_VRS:
            entry = _raw_json(raw, text_plain)
            if entry is not None:
                result[f"{int(tag):08X}"] = entry
                continue
        tag_hex = f"{int(tag):08X}"
        vr = _vr_of(raw, int(tag), bits_allocated)
        length = getattr(raw, "length", None)
        is_deferred = isinstance(raw, RawDataElement) and raw.value is None and raw.length not in (0, None)
        element_path = path + [tag_hex]
        is_pixel_data = int(tag) in PIXEL_DATA_TAGS and length not in (0, None)
        if vr in BULK_VRS and (is_deferred or is_pixel_data
                               or (length is not None and 0 < length != 0xFFFFFFFF
                                   and length > BULK_DATA_THRESHOLD)):
            key = "/".join(element_path)
            result[tag_hex] = {"vr": vr, "BulkDataURI": f"{BULK_BASE_TOKEN}{instance_path}/bulkdata/{key}"}
            tell = getattr(raw, "value_tell", None)
            if isinstance(raw, RawDataElement) and tell is not None:
                candidates[key] = (int(tag), [base + int(tell), int(tell)],
                                   int(raw.length) if raw.length != 0xFFFFFFFF else -1)
            continue
        element = ds[tag]
        if element.VR == "SQ":
            items = []
            for number, item in enumerate(element.value or []):
                item_base = base + int(getattr(item, "seq_item_tell", None) or 0)
                items.append(_to_json(item, element_path + [str(number)], instance_path, candidates,
                                      item_base, bits_allocated, text_plain))
            entry = {"vr": "SQ"}
            if items:
                entry["Value"] = items
            result[tag_hex] = entry
            continue
        if element.VR in BULK_VRS and element.value is not None and len(element.value) > BULK_DATA_THRESHOLD:
            key = "/".join(element_path)
            result[tag_hex] = {"vr": element.VR,
                               "BulkDataURI": f"{BULK_BASE_TOKEN}{instance_path}/bulkdata/{key}"}
            tell = getattr(raw, "value_tell", None)
            if tell is not None and isinstance(raw, RawDataElement):
                candidates[key] = (int(tag), [base + int(tell), int(tell)], int(raw.length))
            continue
        result[tag_hex] = element.to_json_dict(None, BULK_DATA_THRESHOLD)
    return result


def _verified_offsets(filename: str, candidates: dict, transfer_syntax: str) -> dict[str, list[int]]:
    """{tag path: [offset, length]} for the bulk values whose element header is where pydicom says."""
    implicit = transfer_syntax == "1.2.840.10008.1.2"
    order = ">" if transfer_syntax == "1.2.840.10008.1.2.2" else "<"
    header = 8 if implicit else 12          # bulk VRs (OB, OW, UN, ...) have 4-byte lengths in explicit VR
    located: dict[str, list[int]] = {}
    with open(filename, "rb") as handle:
        for key, (tag, offsets, length) in candidates.items():
            expected = struct.pack(order + "HH", tag >> 16, tag & 0xFFFF)
            for offset in dict.fromkeys(offsets):
                if offset < header:
                    continue
                handle.seek(offset - header)
                if handle.read(4) == expected:
                    located[key] = [offset, length]
                    break
    return located


def _frame_layout(ds: Dataset, transfer_syntax: str, instance: dict) -> list | None:
    """Per frame, the [offset, length] of its bytes (native) or of each of its fragments (encapsulated)."""
    raw = ds.get_item(0x7FE00010, keep_deferred=True)
    if raw is None or not isinstance(raw, RawDataElement) or raw.value_tell is None:
        return None
    frames = instance["number_of_frames"] or 1
    filename = ds.filename if isinstance(ds.filename, str) else None
    if raw.length != 0xFFFFFFFF:
        rows, columns, bits = instance["rows"], instance["columns"], instance["bits_allocated"]
        samples = v.to_int(_get(ds, "SamplesPerPixel")) or 1
        if not (rows and columns and bits) or (rows * columns * samples * bits) % 8:
            return None
        size = rows * columns * samples * bits // 8
        if size * frames > raw.length:
            return None
        return [[[raw.value_tell + i * size, size]] for i in range(frames)]
    if not filename:
        return None
    with open(filename, "rb") as handle:
        fragments = _read_fragments(handle, raw.value_tell, raw.is_little_endian)
        if not fragments:
            return None
        offset_table, fragments = fragments[0], fragments[1:]
        if not fragments:
            return None
        if frames == 1:
            return [[[o, n] for o, n, _ in fragments]]
        if len(fragments) == frames:
            return [[[o, n]] for o, n, _ in fragments]
        starts = _frame_starts(ds, handle, offset_table, fragments, frames)
        if starts is None:
            return None
        result = []
        for number, first in enumerate(starts):
            last = starts[number + 1] if number + 1 < len(starts) else len(fragments)
            result.append([[o, n] for o, n, _ in fragments[first:last]])
        return result


def _read_fragments(handle, start: int, little_endian: bool) -> list[tuple[int, int, int]]:
    """(data offset, length, item offset) of each item of encapsulated Pixel Data, Basic Offset Table
    first."""
    order = "<" if little_endian else ">"
    handle.seek(start)
    items = []
    while True:
        header = handle.read(8)
        if len(header) < 8:
            return []
        group, element, length = struct.unpack(order + "HHL", header)
        tag = (group << 16) | element
        if tag == 0xFFFEE0DD:
            return items
        if tag != 0xFFFEE000 or length == 0xFFFFFFFF:
            return []
        item_offset = handle.tell() - 8
        items.append((handle.tell(), length, item_offset))
        handle.seek(length, 1)


def _frame_starts(ds, handle, offset_table, fragments, frames) -> list[int] | None:
    """Index of the first fragment of each frame, from the offset tables or the codestream markers."""
    first_item = fragments[0][2]
    positions = {item_offset - first_item: index for index, (_, _, item_offset) in enumerate(fragments)}
    extended = ds.get_item(0x7FE00001, keep_deferred=True)
    if extended is not None:
        data = ds[0x7FE00001].value
        offsets = list(struct.unpack(f"<{len(data) // 8}Q", data))
        starts = [positions.get(o) for o in offsets]
        if len(starts) == frames and None not in starts:
            return starts
    data_offset, length, _ = offset_table
    if length:
        handle.seek(data_offset)
        table = handle.read(length)
        offsets = struct.unpack(f"<{length // 4}L", table)
        starts = [positions.get(o) for o in offsets]
        if len(starts) == frames and None not in starts:
            return starts
    starts = []
    for index, (offset, size, _) in enumerate(fragments):
        handle.seek(offset)
        marker = handle.read(2)
        if marker in (b"\xff\xd8", b"\xff\x4f"):   # JPEG / JPEG-LS SOI, JPEG 2000 SOC
            starts.append(index)
    if len(starts) == frames and starts[0] == 0:
        return starts
    return None
