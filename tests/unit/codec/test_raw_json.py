"""The DICOM JSON that STOW-RS builds straight from encoded bytes equals what pydicom builds.

``app.codec.instance._raw_json`` skips pydicom's DataElement for the common VRs (it was most of the time
spent parsing a STOW part). pydicom's ``DataElement.to_json_dict`` is the reference: for every raw element
of every bundled test file, and for edge cases of every VR the fast path takes, the two must agree, or the
fast path must decline (return None) so that pydicom converts the element.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import DATA_ROOT
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset

from app.codec.instance import DEFER_SIZE, _raw_json, _text_is_plain

FAST_VRS = ["AE", "AS", "CS", "DA", "DT", "TM", "UI", "UR", "IS", "DS", "SH", "LO", "UC", "ST", "LT", "UT", "PN",
            "US", "SS", "UL", "SL", "FL", "FD", "SV", "UV"]


def _bundled_files() -> list[str]:
    """The files shipped inside pydicom (get_testdata_files would also try to download the others)."""
    root = Path(DATA_ROOT)
    return sorted(str(p) for folder in ("test_files", "charset_files", "palettes") for p in (root / folder).rglob("*.dcm"))


def _reference(raw: RawDataElement, encodings) -> dict | Exception:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            element = convert_raw_data_element(raw, encoding=encodings)
            return element.to_json_dict(None, 1024)
        except Exception as exc:       # pydicom cannot convert it either
            return exc


def _raw_elements(ds: Dataset, text_plain: bool = True):
    """(raw element, character sets in force, text_plain) of every unconverted element, items included."""
    text_plain = _text_is_plain(ds, text_plain)
    encodings = ds._character_set
    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if isinstance(raw, RawDataElement):
            if raw.value is None:                  # deferred bulk data: never converted by STOW
                continue
            if raw.VR not in ("SQ", None):
                yield raw, encodings, text_plain
                continue
        if ds[tag].VR == "SQ":
            for item in ds[tag].value:
                yield from _raw_elements(item, text_plain)


def test_every_element_of_the_bundled_files():
    compared = declined = 0
    for name in _bundled_files():
        try:
            ds = pydicom.dcmread(name, defer_size=DEFER_SIZE)
        except Exception:
            continue
        for raw, encodings, text_plain in list(_raw_elements(ds)):
            fast = _raw_json(raw, text_plain)
            if fast is None:
                declined += 1
                continue
            reference = _reference(raw, encodings)
            assert not isinstance(reference, Exception), (Path(name).name, raw.tag, raw.VR, raw.value, reference)
            assert fast == reference, (Path(name).name, raw.tag, raw.VR, raw.value)
            compared += 1
    assert compared > 2000 and compared > declined        # the fast path is the common one


EDGE_VALUES = [
    b"", b" ", b"  ", b"\x00", b"A", b"A ", b" A", b" A ", b"A\x00", b"A\\B", b"A\\\\B", b"\\", b"A\\", b"\\A",
    b"A \\ B ", b"1", b"+1", b"-1", b"-0", b" 12 ", b"0012", b"1.5", b"1.50", b".5", b"5.", b"1e3", b"-1.5E-3",
    b"1\\2\\3", b"1 \\ 2", b"1\\\\2", b"1.0\\ 2.5", b"nan", b"inf", b"1,5", b"12a", b"1.2.840.10008.1.2",
    b"1.2.3\x00", b"20240131", b"20240131-20240201", b"101010.123456", b"Doe^John", b"Doe^John=", b"Doe^John==",
    b"=Ideo", b"A=B=C", b"A=B=C=D", b"Doe^John\\Roe^Jane", b"^", b"a b  c", b"Line 1\r\nLine 2 ",
    b"http://example.org/x ", b"caf\xe9", b"\x1b$B", b"tab\there",
]


@pytest.mark.parametrize("vr", FAST_VRS)
def test_edge_values(vr):
    import struct
    values = list(EDGE_VALUES)
    if vr in ("US", "SS", "UL", "SL", "FL", "FD", "SV", "UV"):
        values = [b"", b"\x01\x00", b"\x01\x00\x02\x00", b"\xff\xff\xff\xff", b"\x00" * 8, b"\x01\x02\x03",
                  struct.pack("<d", 1.5), struct.pack("<2d", -0.0, 2.25), struct.pack("<f", 3.5)]
    for little_endian in (True, False):
        for text_plain in (True, False):
            for value in values:
                raw = RawDataElement(pydicom.tag.Tag(0x00091010), vr, len(value), value, 0, False, little_endian)
                fast = _raw_json(raw, text_plain)
                if fast is None:
                    continue
                reference = _reference(raw, ["iso8859"])
                assert json.dumps(fast) == json.dumps(reference), (vr, value, little_endian)   # NaN == NaN


def test_text_under_a_character_set_with_code_extensions_is_left_to_pydicom():
    ds = Dataset()
    ds.SpecificCharacterSet = "\\ISO 2022 IR 87"
    assert _text_is_plain(ds, True) is False
    raw = RawDataElement(pydicom.tag.Tag(0x00100010), "PN", 8, b"Yamada^T", 0, False, True)
    assert _raw_json(raw, False) is None
    ds.SpecificCharacterSet = "ISO_IR 192"
    assert _text_is_plain(ds, True) is True
