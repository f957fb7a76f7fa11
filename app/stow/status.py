"""STOW-RS status and reason codes as data (PS3.18 10.5.3, PS3.4 Annex B.2.3, PS3.7 Annex C).

FailureReason (0008,1197) and WarningReason (0008,1196) take the DIMSE status codes of the Storage
Service Class. The table says when this server uses each.
"""
from __future__ import annotations

# code: (meaning in the standard, when this server reports it)
FAILURE_REASONS: dict[int, tuple[str, str]] = {
    0x0110: ("Processing failure", "the blob store or the index failed while storing the part"),
    0x0111: ("Duplicate SOP Instance (PS3.7 C.4.2)",
             "the SOP Instance UID is already stored and app:storecommand.validateDuplicateInstance is true"),
    0x0122: ("Referenced SOP Class not supported", "reserved: every SOP Class is accepted"),
    0xA700: ("Refused: Out of Resources", "the storage volume is full"),
    0xA900: ("Error: Data Set does not match SOP Class",
             "a required identifying attribute is missing or invalid, or the part belongs to another study "
             "than the one in the request URL"),
    0xC000: ("Error: Cannot understand",
             "the part is not a readable DICOM object or its media type is wrong"),
    0xC122: ("Referenced Transfer Syntax not supported", "reserved: every transfer syntax is stored as sent"),
}

WARNING_REASONS: dict[int, tuple[str, str]] = {
    0xB000: ("Coercion of Data Elements", "attributes were changed on store (de-identification)"),
    0xB006: ("Elements Discarded", "attributes were removed on store (de-identification)"),
    0xB007: ("Data Set does not match SOP Class", "stored although the object is not conformant"),
}

PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
OUT_OF_RESOURCES = 0xA700
DATA_SET_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
COERCION_OF_DATA_ELEMENTS = 0xB000


def http_status(stored: int, failed: int, warned: int) -> int:
    """HTTP status of a STOW-RS response (PS3.18 10.5.3): 200 all stored, 202 partial or warnings,
    409 none."""
    if failed and not stored:
        return 409
    if failed or warned:
        return 202
    return 200
