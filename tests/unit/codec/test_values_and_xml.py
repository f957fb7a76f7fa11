"""Value normalisation for the index, and PS3.19 XML <-> DICOM JSON."""
from __future__ import annotations

import pytest

from app.codec import values as v
from app.codec.native_xml import from_xml, to_xml
from app.errors import BadRequest


@pytest.mark.parametrize("raw, expected", [("20240102", "20240102"), ("2024.01.02", "20240102"),
                                           ("20241302", ""), ("2024", ""), (None, ""), (" 20240102 ", "20240102")])
def test_normalize_date(raw, expected):
    assert v.normalize_date(raw) == expected


@pytest.mark.parametrize("raw, upper, expected", [
    ("10", False, "100000.000000"), ("10", True, "105959.999999"), ("1015", False, "101500.000000"),
    ("101530.5", False, "101530.500000"), ("101530.5", True, "101530.599999"), ("10:15:30", False, "101530.000000"),
    ("2500", False, ""), ("abc", False, ""), ("", False, ""),
])
def test_normalize_time(raw, upper, expected):
    assert v.normalize_time(raw, upper=upper) == expected


def test_fold_name_and_text():
    assert v.fold_name("Müller^Zoë") == "MULLER^ZOE"
    assert v.fold_name("山田^太郎") == "山田^太郎"
    assert v.text(["CT", "MR"], 16) == "CT\\MR"
    assert v.text("x" * 100, 64) == "x" * 64
    assert v.to_int("12") == 12 and v.to_int("1.0") == 1 and v.to_int("n/a") is None


def test_xml_round_trip():
    dataset = {
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^John", "Ideographic": "山田^太郎"}]},
        "00080060": {"vr": "CS", "Value": ["CT"]},
        "00200013": {"vr": "IS", "Value": [5]},
        "00281050": {"vr": "DS", "Value": ["40.5"]},
        "00280010": {"vr": "US", "Value": [512]},
        "00081199": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3"]}}]},
        "7FE00010": {"vr": "OW", "BulkDataURI": "http://x/bulk"},
        "00291010": {"vr": "OB", "InlineBinary": "AAEC"},
        "00081030": {"vr": "LO"},
    }
    xml = to_xml(dataset)
    assert b'keyword="PatientName"' in xml and b"<FamilyName>Doe</FamilyName>" in xml
    assert from_xml(xml) == dataset


@pytest.mark.parametrize("document, text", [
    (b"<not-closed", "well-formed"),
    (b"<Other/>", "NativeDicomModel"),
    (b'<NativeDicomModel><DicomAttribute tag="0010" vr="PN"/></NativeDicomModel>', "8-digit"),
    (b'<NativeDicomModel><DicomAttribute tag="00280010" vr="US"><Value number="1">x</Value>'
     b"</DicomAttribute></NativeDicomModel>", "malformed value"),
])
def test_bad_xml_is_a_bad_request(document, text):
    with pytest.raises(BadRequest) as failure:
        from_xml(document)
    assert text in failure.value.message


def test_xml_entities_are_not_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    document = (f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file://{secret}">]>'
                '<NativeDicomModel><DicomAttribute tag="00100020" vr="LO"><Value number="1">&e;</Value>'
                "</DicomAttribute></NativeDicomModel>").encode()
    parsed = from_xml(document)
    assert "TOPSECRET" not in str(parsed)
