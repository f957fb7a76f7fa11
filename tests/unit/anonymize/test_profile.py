"""De-identification against PS3.15 Table E.1-1, attribute by attribute: Basic Profile and each Option.

The expected action of every row is derived here from the row itself (the transcribed table) with the
documented rules: an entry of a chosen Option overrides the Basic Profile action (C over K when chosen
Options disagree), and X/Z -> Z, X/D -> D, Z/D -> D, X/Z/D -> D, X/Z/U* -> U.
"""
from __future__ import annotations

import csv
from pathlib import Path
import subprocess
import sys

import pydicom
import pytest
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian

from app.anonymize import (Deidentifier, deidentify, deidentify_file, load_table, map_uid, parse_options,
                           resolve_uid_secret)
from app.anonymize.profile import (COMPOUND, OPTION_COLUMNS, OPTION_DEFS, TABLE_PATH, Options,
                                   date_offset_days, patient_pseudonym, resolve, shift_date)
from app.errors import ConfigurationError
from tests.helpers import REPO, make_dataset, sample_path, uid

SECRET = b"unit-test-secret"
PATIENT_ID = "PID-1"
CT = "1.2.840.10008.5.1.4.1.1.2"

ROWS = [row for row in load_table() if row.is_single_tag]
SPELLING = {o.column: o.spellings[0] for o in OPTION_DEFS}


def expected_action(row, columns) -> str:
    entries = [row.options[c] for c in columns if c in row.options]
    if entries:
        return "C" if "C" in entries else "K"
    return {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}.get(row.basic, row.basic)


def vr_of(tag: int) -> str:
    return dictionary_VR(tag).split(" or ")[0]


PLAUSIBLE = {
    "AE": "STATION1", "AS": "045Y", "CS": "VALUE", "DA": "20240102", "DT": "20240102101500", "TM": "101500",
    "DS": "1.5", "IS": "7", "LO": "CHEST PA", "LT": "CHEST PA", "SH": "CHEST", "ST": "CHEST PA",
    "UT": "CHEST PA", "UC": "CHEST PA", "PN": "Roe^Richard", "UR": "http://example.org/x", "US": 5, "SS": 5,
    "UL": 5, "SL": 5, "FL": 1.5, "FD": 1.5, "OB": b"\x01\x02", "OW": b"\x01\x02", "UN": b"\x01\x02",
    "UI": uid("attribute-under-test"),
}


def sequence_value() -> Sequence:
    item = Dataset()
    item.CodeValue = "123"
    item.CodingSchemeDesignator = "99X"
    item.CodeMeaning = "Thing"
    item.ReferencedSOPClassUID = CT
    item.ReferencedSOPInstanceUID = uid("referenced", "in-item")
    return Sequence([item])


def dataset_with(tag: int) -> tuple[Dataset, object]:
    ds = Dataset()
    if tag != 0x00100020:
        ds.PatientID = PATIENT_ID
    vr = vr_of(tag)
    value = sequence_value() if vr == "SQ" else PLAUSIBLE[vr]
    if tag == 0x00100020:
        value = PATIENT_ID
    ds[tag] = DataElement(tag, vr, value)
    return ds, value


def check(ds: Dataset, tag: int, original, action: str, columns) -> None:
    vr = vr_of(tag)
    name = keyword_for_tag(tag)
    if action == "C" and vr not in CLEANABLE_VRS:
        action = "X"                     # binary values (OB timestamps, maker notes) cannot be cleaned
    if action == "X":
        assert tag not in ds, f"{name} should be removed"
        return
    assert tag in ds, f"{name} should be present after {action}"
    value = ds[tag].value
    if action == "Z":
        assert value in (None, "", b"") or (vr == "SQ" and len(value) == 0), f"{name} not empty: {value!r}"
    elif action == "D":
        if vr == "UI":
            assert value == map_uid(original, SECRET) != original
        elif vr == "SQ":
            assert len(value) == 1 and len(value[0]) == 0, "a dummy sequence is one empty item"
        elif tag == 0x00100020:
            assert value == patient_pseudonym(PATIENT_ID, SECRET)
        else:
            assert value not in (None, "", b"") and value != original, f"{name}: {value!r}"
    elif action == "U":
        if vr == "SQ":
            item = value[0]
            expected = (item.ReferencedSOPInstanceUID if "retain_uids" in columns
                        else map_uid(uid("referenced", "in-item"), SECRET))
            assert item.ReferencedSOPInstanceUID == expected
            assert item.ReferencedSOPClassUID == CT
        else:
            assert value == map_uid(original, SECRET) != original
    elif action == "K":
        if vr == "SQ":
            assert len(value) == 1 and value[0].CodeValue == "123"
        else:
            assert value == original
    elif action == "C":
        if vr == "SQ":
            assert len(value) == 1 and value[0].CodeValue == "123"
        elif vr in ("DA", "DT"):
            assert value == shift_date(original, date_offset_days(PATIENT_ID, SECRET)) != original
        elif vr == "TM":
            assert value == original
        elif vr in ("AE", "LO", "SH", "ST", "LT", "UT", "UC", "PN", "CS"):
            assert value == original, "a clean descriptor passes the screen"
        else:
            raise AssertionError(f"{name}: C on {vr} is not in the table")
    else:
        raise AssertionError(action)


CLEANABLE_VRS = {"SQ", "DA", "DT", "TM", "AE", "LO", "SH", "ST", "LT", "UT", "UC", "PN", "CS"}


def _id(row) -> str:
    return f"{row.tag[1:5]}{row.tag[6:10]}-{keyword_for_tag(row.tag_value) or row.name}"


# --------------------------------------------------------------------------------------------------------
# The table itself
# --------------------------------------------------------------------------------------------------------

def test_table_is_the_whole_2024b_table_with_a_source_header():
    text = TABLE_PATH.read_text(encoding="utf-8")
    assert text.startswith("#") and "2024b" in text.split("\n", 1)[0] + text[:600]
    assert "innolitics/dicom-standard" in text[:1200]
    rows = load_table()
    assert len(rows) == 621
    assert len({r.tag for r in rows}) == len(rows)
    assert {r.tag for r in rows if not r.is_single_tag} == {"(50xx,xxxx)", "(60xx,3000)", "(60xx,4000)",
                                                             "(gggg,eeee)"}
    actions = {"X", "Z", "D", "U", "K", "C", *COMPOUND}
    assert all(r.basic in actions for r in rows)
    assert all(a in ("K", "C") for r in rows for a in r.options.values())
    with open(TABLE_PATH, encoding="utf-8") as handle:
        header = next(csv.reader(line for line in handle if not line.startswith("#")))
    assert header[4:] == list(OPTION_COLUMNS)


def test_every_single_tag_row_is_a_known_dicom_attribute():
    unknown = [r.tag for r in ROWS if not keyword_for_tag(r.tag_value)]
    assert unknown == []


# Spot checks of well-known rows of PS3.15 2024b Table E.1-1 (guards the transcription).
KNOWN_ROWS = {
    "(0008,0018)": ("U", {"retain_uids": "K"}),                      # SOP Instance UID
    "(0008,0020)": ("Z", {"retain_long_full_dates": "K", "retain_long_modified_dates": "C"}),  # Study Date
    "(0008,0050)": ("Z", {}),                                        # Accession Number
    "(0008,0080)": ("X/Z/D", {"retain_institution_identity": "K"}),  # Institution Name
    "(0008,0090)": ("Z", {}),                                        # Referring Physician's Name
    "(0008,1030)": ("X", {"clean_descriptors": "C"}),                # Study Description
    "(0008,103E)": ("X", {"clean_descriptors": "C"}),                # Series Description
    "(0008,1155)": ("U", {"retain_uids": "K"}),                      # Referenced SOP Instance UID
    "(0008,1140)": ("X/Z/U*", {"retain_uids": "K"}),                 # Referenced Image Sequence
    "(0010,0010)": ("Z", {}),                                        # Patient's Name
    "(0010,0020)": ("Z/D", {}),                                      # Patient ID
    "(0010,0030)": ("Z", {}),                                        # Patient's Birth Date
    "(0010,0040)": ("Z", {"retain_patient_characteristics": "K"}),   # Patient's Sex
    "(0010,1010)": ("X", {"retain_patient_characteristics": "K"}),   # Patient's Age
    "(0018,1000)": ("X/Z/D", {"retain_device_identity": "K"}),       # Device Serial Number
    "(0020,000D)": ("U", {"retain_uids": "K"}),                      # Study Instance UID
    "(0020,000E)": ("U", {"retain_uids": "K"}),                      # Series Instance UID
    "(0020,0010)": ("Z", {}),                                        # Study ID
    "(0020,0052)": ("U", {"retain_uids": "K"}),                      # Frame of Reference UID
    "(0040,A730)": ("D", {"clean_structured_content": "C"}),         # Content Sequence
    "(60xx,3000)": ("X", {"clean_graphics": "C"}),                   # Overlay Data
    "(50xx,xxxx)": ("X", {"clean_graphics": "C"}),                   # Curve Data
    "(gggg,eeee)": ("X", {"retain_safe_private": "C"}),              # Private Attributes
}


@pytest.mark.parametrize("tag", sorted(KNOWN_ROWS))
def test_known_rows(tag):
    row = next(r for r in load_table() if r.tag == tag)
    assert (row.basic, row.options) == KNOWN_ROWS[tag]


@pytest.mark.parametrize("code, resolved", [("X/Z", "Z"), ("X/D", "D"), ("Z/D", "D"), ("X/Z/D", "D"),
                                            ("X/Z/U*", "U"), ("X", "X"), ("Z", "Z"), ("D", "D"), ("U", "U")])
def test_compound_actions_resolve_by_the_documented_rule(code, resolved):
    from app.anonymize.profile import Row
    assert resolve(Row("(0009,0009)", "test", code, {}), Options()) == resolved


def test_disagreeing_options_take_the_stricter_clean():
    row = next(r for r in load_table() if r.tag == "(0018,1200)")      # Date of Last Calibration
    options = parse_options("BasicProfile,RetainDeviceIdent,RetainLongModifiedDates")
    assert resolve(row, options) == "C"
    assert resolve(row, parse_options("RetainDeviceIdent")) == "K"


# --------------------------------------------------------------------------------------------------------
# Attribute by attribute: Basic Profile, then each Option
# --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_basic_profile_row(row):
    ds, original = dataset_with(row.tag_value)
    deidentify(ds, "BasicProfile", SECRET)
    check(ds, row.tag_value, original, expected_action(row, ()), ())


OPTION_CASES = [(column, row) for column in OPTION_COLUMNS for row in ROWS if column in row.options]


@pytest.mark.parametrize("column, row", OPTION_CASES,
                         ids=[f"{SPELLING[c]}-{_id(r)}" for c, r in OPTION_CASES])
def test_option_row(column, row):
    ds, original = dataset_with(row.tag_value)
    deidentify(ds, f"BasicProfile,{SPELLING[column]}", SECRET)
    check(ds, row.tag_value, original, expected_action(row, (column,)), (column,))


@pytest.mark.parametrize("column", OPTION_COLUMNS)
def test_option_leaves_rows_without_an_entry_to_the_basic_profile(column):
    rows = [row for row in ROWS if column not in row.options]
    for row in rows:
        ds, original = dataset_with(row.tag_value)
        deidentify(ds, f"BasicProfile,{SPELLING[column]}", SECRET)
        check(ds, row.tag_value, original, expected_action(row, ()), (column,))


DICOMCLOUD_DEFAULT = ("retain_uids", "retain_long_full_dates", "retain_patient_characteristics")


@pytest.mark.parametrize("row", [r for r in ROWS if set(r.options) & set(DICOMCLOUD_DEFAULT)], ids=_id)
def test_dicomcloud_default_options_row(row):
    ds, original = dataset_with(row.tag_value)
    deidentify(ds, "BasicProfile,RetainUIDs,RetainLongFullDates,RetainPatientChars", SECRET)
    check(ds, row.tag_value, original, expected_action(row, DICOMCLOUD_DEFAULT), DICOMCLOUD_DEFAULT)


# --------------------------------------------------------------------------------------------------------
# Groups, private attributes, sequences
# --------------------------------------------------------------------------------------------------------

def _with_graphics_and_private() -> Dataset:
    ds = make_dataset()
    ds.add_new(0x50000010, "US", 2)               # Curve Dimensions (50xx,xxxx)
    ds.add_new(0x50023000, "OW", b"\0\1\2\3")    # Curve Data of another curve group
    ds.add_new(0x60003000, "OW", b"\xff" * 32)    # Overlay Data
    ds.add_new(0x60004000, "LT", "Doe knee")      # Overlay Comments naming the patient (Doe^John)
    ds.add_new(0x60000010, "US", 16)              # Overlay Rows: not in the table, kept
    ds.add_new(0x60020040, "CS", "G")             # Overlay Type of another overlay group, kept
    block = ds.private_block(0x0009, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", "secret private value")
    item = Dataset()
    item.add_new(0x00290010, "LO", "ACME 1.0")
    item.add_new(0x00291001, "LO", "nested private")
    item.CodeValue = "1"
    ds.AnatomicRegionSequence = Sequence([item])
    return ds


@pytest.mark.parametrize("options", ["BasicProfile", "BasicProfile,CleanGraphics",
                                     "BasicProfile,RetainSafePrivate"])
def test_curves_overlays_and_private_attributes(options):
    ds = _with_graphics_and_private()
    deidentify(ds, options, SECRET)
    for tag in (0x50000010, 0x50023000, 0x60003000):
        assert tag not in ds, "bitmaps cannot be cleaned: removed even with Clean Graphics"
    if "CleanGraphics" in options:
        assert ds[0x60004000].value == "REMOVED"
    else:
        assert 0x60004000 not in ds
    assert ds[0x60000010].value == 16 and ds[0x60020040].value == "G"
    assert not [e for e in ds if e.tag.is_private]
    item = ds.AnatomicRegionSequence[0]
    assert not [e for e in item if e.tag.is_private] and item.CodeValue == "1"


def test_sequences_are_entered_and_references_rewritten_consistently():
    ds = make_dataset("s1", "se1", "i1")
    originals = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    referenced = Dataset()
    referenced.SeriesInstanceUID = ds.SeriesInstanceUID
    instance = Dataset()
    instance.ReferencedSOPClassUID = CT
    instance.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    referenced.ReferencedInstanceSequence = Sequence([instance])
    ds.ReferencedSeriesSequence = Sequence([referenced])
    source = Dataset()
    source.ReferencedSOPClassUID = CT
    source.ReferencedSOPInstanceUID = uid("source")
    ds.SourceImageSequence = Sequence([source])
    nested = Dataset()
    nested.PatientName = "Doe^John"
    nested.PatientID = "PID-1"
    nested.StudyDescription = "secret"
    nested.CodeValue = "T-D0050"
    ds.AnatomicRegionSequence = Sequence([nested])        # not in the table: entered, items de-identified

    report = deidentify(ds, "BasicProfile", SECRET)
    new_study, new_series, new_sop = (map_uid(u, SECRET) for u in originals)
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == (new_study, new_series, new_sop)
    item = ds.ReferencedSeriesSequence[0]
    assert item.SeriesInstanceUID == new_series
    assert item.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == new_sop
    assert item.ReferencedInstanceSequence[0].ReferencedSOPClassUID == CT
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == map_uid(uid("source"), SECRET)
    inner = ds.AnatomicRegionSequence[0]
    assert not inner.PatientName and inner.PatientID == patient_pseudonym("PID-1", SECRET)
    assert "StudyDescription" not in inner and inner.CodeValue == "T-D0050"
    assert report.uid_map[originals[2]] == new_sop
    path = "ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID"
    assert path in report.replaced


def test_uids_without_a_row_are_replaced_but_well_known_and_class_uids_are_kept():
    ds = make_dataset()
    ds.add_new(0x00080118, "UI", "1.2.3.4.5.6.7")            # Mapping Resource UID: class-like, kept
    ds.add_new(0x0040A171, "UI", uid("observation"))          # Observation UID (has a row)
    ds.MultiFrameSourceSOPInstanceUID = ds.SOPInstanceUID     # a UI without a row: replaced consistently
    ds.add_new(0x00089123, "UI", "1.2.3.4.5.99")             # Creator Version UID: class-like, kept
    ds.SynchronizationFrameOfReferenceUID = "1.2.840.10008.15.1.1"    # well-known UTC frame
    deidentify(ds, "BasicProfile", SECRET)
    assert ds.SOPClassUID == CT
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds[0x00080118].value == "1.2.3.4.5.6.7"
    assert ds.SynchronizationFrameOfReferenceUID == "1.2.840.10008.15.1.1"
    assert ds[0x0040A171].value == map_uid(uid("observation"), SECRET)
    assert ds.MultiFrameSourceSOPInstanceUID == ds.SOPInstanceUID != make_dataset().SOPInstanceUID
    assert ds[0x00089123].value == "1.2.3.4.5.99"


def test_retain_uids_keeps_every_uid():
    ds = make_dataset()
    before = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    ref = Dataset()
    ref.ReferencedSOPClassUID = CT
    ref.ReferencedSOPInstanceUID = uid("ref")
    ds.ReferencedImageSequence = Sequence([ref])
    report = deidentify(ds, "BasicProfile,RetainUIDs", SECRET)
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == before
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == uid("ref")
    assert ds.file_meta.MediaStorageSOPInstanceUID == before[2]
    assert report.uid_map == {}


# --------------------------------------------------------------------------------------------------------
# Consistency of the mapping
# --------------------------------------------------------------------------------------------------------

def test_uid_mapping_is_consistent_across_calls_and_differs_by_secret():
    first, second = make_dataset(), make_dataset()
    deidentify(first, "BasicProfile", SECRET)
    deidentify(second, "BasicProfile", SECRET)
    assert first.SOPInstanceUID == second.SOPInstanceUID
    assert first.StudyInstanceUID == second.StudyInstanceUID
    other = make_dataset()
    deidentify(other, "BasicProfile", b"another secret")
    assert other.StudyInstanceUID != first.StudyInstanceUID
    new = first.SOPInstanceUID
    assert new.startswith("2.25.") and len(new) <= 64 and pydicom.uid.UID(new).is_valid


def test_uid_mapping_is_the_same_in_another_process():
    original = uid("cross-process")
    code = ("import sys; from app.anonymize import map_uid; "
            "print(map_uid(sys.argv[1], sys.argv[2].encode()))")
    out = subprocess.run([sys.executable, "-c", code, original, SECRET.decode()], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out == map_uid(original, SECRET)


def test_modified_dates_shift_by_a_consistent_per_patient_offset():
    a1 = make_dataset(patient_id="A", study_date="20240102", SeriesDate="20240103",
                      AcquisitionDateTime="20240102101500.5+0100", AcquisitionTime="101500")
    a2 = make_dataset("s2", patient_id="A", study_date="20240102")
    b = make_dataset("s3", patient_id="B", study_date="20240102")
    reports = [deidentify(ds, "BasicProfile,RetainLongModifiedDates", SECRET) for ds in (a1, a2, b)]
    days = date_offset_days("A", SECRET)
    assert reports[0].date_offset_days == reports[1].date_offset_days == days
    assert 1 <= days <= 3650
    assert a1.StudyDate == a2.StudyDate == shift_date("20240102", days) != "20240102"
    assert a1.SeriesDate == shift_date("20240103", days)
    assert a1.AcquisitionDateTime == shift_date("20240102", days) + "101500.5+0100"
    assert a1.AcquisitionTime == "101500"
    assert b.StudyDate == shift_date("20240102", date_offset_days("B", SECRET))
    assert a1.LongitudinalTemporalInformationModified == "MODIFIED"


def test_shift_date_handles_bad_values():
    assert shift_date("20240301", 1) == "20240229"
    assert shift_date("2024", 1) == "" and shift_date("", 1) == "" and shift_date("2024ab01", 1) == ""


# --------------------------------------------------------------------------------------------------------
# Clean Descriptors screen
# --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, kept", [("CHEST PA", True), ("T1 AX POST GD", True), ("Doe chest", False),
                                        ("MRN 1234567", False), ("call jdoe@example.org", False),
                                        ("ACC-s1 follow-up", False)])
def test_clean_descriptors_keeps_only_text_that_passes_the_screen(text, kept):
    ds = make_dataset(patient_name="Doe^John", StudyDescription=text, SeriesDescription=[text, "AXIAL"])
    deidentify(ds, "BasicProfile,CleanDescriptors", SECRET)
    assert ds.StudyDescription == (text if kept else "REMOVED")
    assert list(ds.SeriesDescription) == [text if kept else "REMOVED", "AXIAL"]


# --------------------------------------------------------------------------------------------------------
# Marking, options, file meta
# --------------------------------------------------------------------------------------------------------

def test_identity_removed_method_and_code_sequence():
    ds = make_dataset()
    deidentify(ds, "BasicProfile,RetainUIDs,RetainLongFullDates,RetainPatientChars", SECRET)
    assert ds.PatientIdentityRemoved == "YES"
    assert list(ds.DeidentificationMethod) == [
        "Basic Application Confidentiality Profile", "Retain UIDs Option",
        "Retain Patient Characteristics Option", "Retain Longitudinal Temporal Information Full Dates Option"]
    codes = [(i.CodingSchemeDesignator, i.CodeValue, i.CodeMeaning)
             for i in ds.DeidentificationMethodCodeSequence]
    assert codes == [("DCM", "113100", "Basic Application Confidentiality Profile"),
                     ("DCM", "113110", "Retain UIDs Option"),
                     ("DCM", "113108", "Retain Patient Characteristics Option"),
                     ("DCM", "113106", "Retain Longitudinal Temporal Information Full Dates Option")]
    assert ds.LongitudinalTemporalInformationModified == "UNMODIFIED"


CID_7050 = {"BasicProfile": "113100", "RetainSafePrivate": "113111", "RetainUIDs": "113110",
            "RetainDeviceIdent": "113109", "RetainInstitutionIdent": "113112", "RetainPatientChars": "113108",
            "RetainLongFullDates": "113106", "RetainLongModifiedDates": "113107",
            "CleanDescriptors": "113105",
            "CleanStructuredContent": "113104", "CleanGraphics": "113103"}


@pytest.mark.parametrize("name, code", sorted(CID_7050.items()))
def test_each_option_is_coded_with_its_cid_7050_code(name, code):
    ds = make_dataset()
    deidentify(ds, name, SECRET)
    values = [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]
    assert values[0] == "113100" and code in values
    assert len(values) == (1 if name == "BasicProfile" else 2)


def test_existing_code_items_are_kept_and_not_repeated():
    ds = make_dataset()
    deidentify(ds, "BasicProfile", SECRET)
    deidentify(ds, "BasicProfile,RetainUIDs", SECRET)
    assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == ["113100", "113110"]


def test_file_meta_follows_the_new_sop_instance_uid():
    ds = make_dataset()
    deidentify(ds, "BasicProfile", SECRET)
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPClassUID == CT


@pytest.mark.parametrize("text, columns", [
    ("BasicProfile,RetainUIDs,RetainLongFullDates,RetainPatientChars",
     {"retain_uids", "retain_long_full_dates", "retain_patient_characteristics"}),
    ("basicprofile, retainuids ,RETAINSAFEPRIVATE", {"retain_uids", "retain_safe_private"}),
    ("RetainDeviceIdent,RetainInstitutionIdent,CleanDescriptors,CleanStructuredContent,CleanGraphics",
     {"retain_device_identity", "retain_institution_identity", "clean_descriptors",
      "clean_structured_content", "clean_graphics"}),
    ("RetainLongModifDates,CleanDesc,CleanStructdCont,CleanGraph",
     {"retain_long_modified_dates", "clean_descriptors", "clean_structured_content", "clean_graphics"}),
    ("Retain Long Modified Dates, retain_uids", {"retain_long_modified_dates", "retain_uids"}),
    ("", set()),
])
def test_parse_options(text, columns):
    assert parse_options(text).columns == frozenset(columns)


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(ConfigurationError) as caught:
        parse_options("BasicProfile,CleanPixelData,Frobnicate")
    text = str(caught.value.problems if hasattr(caught.value, "problems") else caught.value)
    assert "CleanPixelData" in text and "Frobnicate" in text and "RetainSafePrivate" in text


def test_full_and_modified_dates_exclude_each_other():
    with pytest.raises(ConfigurationError):
        parse_options("RetainLongFullDates,RetainLongModifiedDates")


def test_pixel_data_is_not_touched():
    ds = make_dataset()
    pixels = ds.PixelData
    deidentify(ds, "BasicProfile", SECRET)
    assert ds.PixelData == pixels


def test_deidentifier_maps_url_uids_like_the_objects():
    deidentifier = Deidentifier("BasicProfile", SECRET)
    ds = make_dataset()
    study = ds.StudyInstanceUID
    deidentifier.deidentify(ds)
    assert deidentifier.map_uid(study) == ds.StudyInstanceUID
    assert Deidentifier("RetainUIDs", SECRET).map_uid(study) == study
    assert "secret" not in repr(deidentifier)


# --------------------------------------------------------------------------------------------------------
# Files and the secret
# --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                                  "image_dfl.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm", "rtdose.dcm"])
def test_deidentify_file_keeps_transfer_syntax_and_pixel_bytes(tmp_path, name):
    path = tmp_path / "object.dcm"
    path.write_bytes(Path(sample_path(name)).read_bytes())
    original = pydicom.dcmread(sample_path(name))
    report = deidentify_file(str(path), Deidentifier("BasicProfile", SECRET))
    stored = pydicom.dcmread(path)
    assert stored.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert stored.PixelData == original.PixelData
    assert stored.SOPInstanceUID == map_uid(original.SOPInstanceUID, SECRET) == report.sop_instance_uid
    assert stored.file_meta.MediaStorageSOPInstanceUID == stored.SOPInstanceUID
    assert stored.PatientIdentityRemoved == "YES"
    assert not stored.get("PatientName")
    assert not [e for e in stored if e.tag.is_private]
    assert not list(tmp_path.glob("*.deid"))


def test_deidentify_file_refuses_what_is_not_dicom(tmp_path):
    from app.anonymize import DeidentificationError
    path = tmp_path / "junk.dcm"
    path.write_bytes(b"not dicom at all" * 20)
    with pytest.raises(DeidentificationError) as caught:
        deidentify_file(str(path), Deidentifier("BasicProfile", SECRET))
    assert caught.value.unreadable


def test_secret_is_generated_once_and_reused(tmp_path):
    first = resolve_uid_secret("", tmp_path / "App_Data")
    key_file = tmp_path / "App_Data" / "anonymizer.key"
    assert key_file.is_file() and len(first) >= 32
    assert (key_file.stat().st_mode & 0o777) == 0o600
    assert resolve_uid_secret("", tmp_path / "App_Data") == first
    assert resolve_uid_secret("configured", tmp_path / "App_Data") == b"configured"
    assert [p.name for p in (tmp_path / "App_Data").iterdir()] == ["anonymizer.key"]


def test_every_option_definition_has_a_distinct_code():
    assert len({o.code for o in OPTION_DEFS}) == len(OPTION_DEFS) == 11
    assert {o.column for o in OPTION_DEFS} - {"basic_profile"} == set(OPTION_COLUMNS)


def test_group_patterns_match_only_their_groups():
    from app.anonymize.profile import compile_profile
    profile = compile_profile(Options())
    assert profile.action_for(Tag(0x501E, 0x3000)) == "X"
    assert profile.action_for(Tag(0x5020, 0x3000)) is None
    assert profile.action_for(Tag(0x5001, 0x3000)) == "X"         # odd: private
    assert profile.action_for(Tag(0x601E, 0x3000)) == "X"
    assert profile.action_for(Tag(0x6000, 0x3001)) is None
    assert profile.action_for(Tag(0x0029, 0x1001)) == "X"
    assert profile.action_for(Tag(0x0028, 0x0010)) is None


def test_deidentified_dataset_still_writes(tmp_path):
    ds = make_dataset()
    ds.file_meta = FileMetaDataset(ds.file_meta)
    deidentify(ds, "BasicProfile,CleanDescriptors,RetainLongModifiedDates", SECRET)
    ds.save_as(tmp_path / "x.dcm", enforce_file_format=True)
    assert pydicom.dcmread(tmp_path / "x.dcm").PatientIdentityRemoved == "YES"


def test_class_uid_keywords_are_ui_attributes():
    from pydicom.datadict import tag_for_keyword
    from app.anonymize.profile import CLASS_UID_KEYWORDS
    assert all(tag_for_keyword(k) and dictionary_VR(tag_for_keyword(k)) == "UI" for k in CLASS_UID_KEYWORDS)


def _pixel_element_start(path) -> int:
    with open(path, "rb") as handle:
        pydicom.dcmread(handle, stop_before_pixels=True)
        return handle.tell()


# Files whose last element is Pixel Data (CT_small.dcm, MR_small_RLE.dcm and MR_small_jpeg_ls_lossless.dcm
# end with Data Set Trailing Padding, which the profile removes: they take the whole-object path).
@pytest.mark.parametrize("name", ["MR_small_implicit.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm",
                                  "SC_rgb_rle_2frame.dcm", "rtdose.dcm"])
def test_pixel_data_element_is_copied_byte_for_byte_without_being_loaded(tmp_path, name, monkeypatch):
    original = Path(sample_path(name)).read_bytes()
    pixel_element = original[_pixel_element_start(sample_path(name)):]
    path = tmp_path / "object.dcm"
    path.write_bytes(original)
    calls = []
    real = pydicom.dcmread
    monkeypatch.setattr(pydicom, "dcmread", lambda *a, **k: calls.append(k) or real(*a, **k))
    deidentify_file(str(path), Deidentifier("BasicProfile", SECRET))
    assert calls == [{"stop_before_pixels": True, "defer_size": 16 * 1024}], "Pixel Data was read"
    result = path.read_bytes()
    assert result.endswith(pixel_element) and len(pixel_element) > 100
    monkeypatch.undo()
    assert pydicom.dcmread(path).PatientIdentityRemoved == "YES"


def test_elements_after_pixel_data_make_a_full_rewrite(tmp_path):
    ds = make_dataset(PatientComments="secret")
    ds.add_new(0xFFFCFFFC, "OB", b"\0" * 8)                  # Data Set Trailing Padding: X
    path = tmp_path / "padded.dcm"
    ds.save_as(path, enforce_file_format=True)
    deidentify_file(str(path), Deidentifier("BasicProfile", SECRET))
    stored = pydicom.dcmread(path)
    assert 0xFFFCFFFC not in stored and "PatientComments" not in stored
    assert stored.PixelData == ds.PixelData


@pytest.mark.parametrize("name, cut", [("MR_small_implicit.dcm", 100), ("JPEG2000.dcm", 30),
                                       ("CT_small.dcm", 200), ("MR_small_jpeg_ls_lossless.dcm", 4000)])
def test_truncated_pixel_data_is_refused(tmp_path, name, cut):
    from app.anonymize import DeidentificationError
    path = tmp_path / "cut.dcm"
    path.write_bytes(Path(sample_path(name)).read_bytes()[:-cut])
    with pytest.raises(DeidentificationError) as caught:
        deidentify_file(str(path), Deidentifier("BasicProfile", SECRET))
    assert caught.value.unreadable and "truncated" in caught.value.message


def test_group_lengths_are_dropped():
    ds = make_dataset()
    ds.add_new(0x00080000, "UL", 1234)
    item = Dataset()
    item.add_new(0x00080000, "UL", 10)
    item.CodeValue = "1"
    ds.AnatomicRegionSequence = Sequence([item])
    deidentify(ds, "BasicProfile", SECRET)
    assert 0x00080000 not in ds and 0x00080000 not in ds.AnatomicRegionSequence[0]


def _as_un(data: bytes, group: int, element: int, vr: bytes) -> bytes:
    """Re-encode one explicit VR little endian element with VR UN (as some converters send it)."""
    import struct
    head = struct.pack("<HH", group, element) + vr
    start = data.index(head)
    length = struct.unpack("<H", data[start + 6:start + 8])[0]
    value = data[start + 8:start + 8 + length]
    return data[:start] + struct.pack("<HH", group, element) + b"UN\0\0" + struct.pack("<L", length) + value \
        + data[start + 8 + length:]


def test_known_attributes_sent_as_un_are_treated_by_their_dictionary_vr(tmp_path):
    from tests.helpers import to_bytes
    ds = make_dataset()
    data = _as_un(_as_un(to_bytes(ds), 0x0020, 0x000D, b"UI"), 0x0010, 0x0010, b"PN")
    path = tmp_path / "un.dcm"
    path.write_bytes(data)
    assert pydicom.dcmread(path).get_item(0x0020000D, keep_deferred=True).VR == "UN"
    deidentify_file(str(path), Deidentifier("BasicProfile", SECRET))
    stored = pydicom.dcmread(path)
    assert stored.StudyInstanceUID == map_uid(ds.StudyInstanceUID, SECRET)
    assert not stored.PatientName
