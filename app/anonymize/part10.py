"""De-identify a Part-10 file in place: read with pydicom, apply the profile, write it back.

The file keeps its transfer syntax and encoding; Pixel Data (native or encapsulated) is written back byte for
byte as read (large values are read lazily from the original while the new file is written beside it, and the
new file replaces the original only when it is complete).
"""
from __future__ import annotations

import os
import struct

import pydicom
from pydicom.errors import InvalidDicomError

from app.anonymize.profile import DeidentificationReport, Deidentifier

DEFER_SIZE = 16 * 1024


class DeidentificationError(Exception):
    """The file could not be de-identified; ``unreadable`` when it is not a readable DICOM object at all."""

    def __init__(self, message: str, *, unreadable: bool = False):
        super().__init__(message)
        self.message = message
        self.unreadable = unreadable


def deidentify_file(path: str, deidentifier: Deidentifier) -> DeidentificationReport:
    try:
        ds = pydicom.dcmread(path, defer_size=DEFER_SIZE)
    except (InvalidDicomError, EOFError, OSError, ValueError, struct.error, NotImplementedError, KeyError,
            TypeError, AttributeError) as exc:
        raise DeidentificationError(f"not a readable DICOM Part-10 object: {exc}", unreadable=True) from exc
    temporary = path + ".deid"
    try:
        report = deidentifier.deidentify(ds)
        ds.save_as(temporary, enforce_file_format=True)
    except Exception as exc:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise DeidentificationError(f"de-identification failed: {type(exc).__name__}: {exc}") from exc
    os.replace(temporary, path)
    return report
