"""De-identification on store (app:enableAnonymizer) end to end: blob, index, metadata, response, QIDO."""
from __future__ import annotations

import json

import pydicom
import pytest
from sqlalchemy import select

from app import create_app
from app.anonymize import map_uid
from app.errors import ConfigurationError
from app.index import tables as t
from tests.helpers import (make_dataset, make_instance, multipart, sample_bytes, sample_path, seq_values,
                           stow_headers, to_bytes, value, write_web_config)

SECRET = "e2e-secret"
BASIC = {"app:enableAnonymizer": "true", "app:anonymizerOptions": "BasicProfile",
         "app:anonymizerUidSecret": SECRET}


def _services(app):
    return app.extensions["dicomcloud"]


def _store(client, parts, study=None):
    url = "/api/studies" if study is None else f"/api/studies/{study}"
    return client.post(url, data=multipart(parts), headers=stow_headers())


def _rows(app, table):
    with _services(app).engine.connect() as conn:
        return [row._asdict() for row in conn.execute(select(table))]


def _read_blob(app, sop_uid):
    with _services(app).engine.connect() as conn:
        row = conn.execute(select(t.instance).where(t.instance.c.sop_instance_uid == sop_uid)).first()
    assert row is not None, f"{sop_uid} is not indexed"
    with _services(app).storage.open(row.blob_key) as handle:
        return pydicom.dcmread(handle)


def _qido(client, url) -> list:
    response = client.get(url)
    assert response.status_code in (200, 204), response.data
    return response.get_json() if response.status_code == 200 else []


def _new(uid: str) -> str:
    return map_uid(uid, SECRET.encode())


def _all_index_text(app) -> str:
    return json.dumps([_rows(app, table) for table in (t.patient, t.study, t.series, t.instance,
                                                       t.series_request_attributes)], default=str)


def test_ct_small_is_stored_de_identified(make_app):
    app = make_app(**BASIC)
    client = app.test_client()
    original = pydicom.dcmread(sample_path("CT_small.dcm"))
    response = _store(client, [sample_bytes("CT_small.dcm")])
    assert response.status_code == 202, response.data
    body = response.get_json()
    (item,) = seq_values(body, "00081199")
    new_sop, new_study, new_series = (_new(original.SOPInstanceUID), _new(original.StudyInstanceUID),
                                      _new(original.SeriesInstanceUID))
    assert value(item, "00081196") == 0xB000
    assert value(item, "00081155") == new_sop
    assert value(item, "00081150") == original.SOPClassUID
    assert value(item, "00081190") == (f"http://localhost/api/studies/{new_study}/series/{new_series}"
                                       f"/instances/{new_sop}")
    assert value(body, "00081190") == f"http://localhost/api/studies/{new_study}"

    stored = _read_blob(app, new_sop)
    stored_uids = (stored.StudyInstanceUID, stored.SeriesInstanceUID, stored.SOPInstanceUID)
    assert stored_uids == (new_study, new_series, new_sop)
    assert stored.file_meta.MediaStorageSOPInstanceUID == new_sop
    assert stored.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert not stored.get("PatientName") and stored.PatientID != original.PatientID
    assert stored.PatientIdentityRemoved == "YES"
    assert [i.CodeValue for i in stored.DeidentificationMethodCodeSequence] == ["113100"]
    assert not [e for e in stored if e.tag.is_private]
    assert stored.PixelData == original.PixelData

    index = _all_index_text(app)
    for identifying in (str(original.PatientName), original.PatientID, original.StudyInstanceUID,
                        original.SeriesInstanceUID, original.SOPInstanceUID, original.StudyDate,
                        original.InstitutionName):
        assert identifying not in index, f"{identifying!r} is still in the index"
    (patient,) = _rows(app, t.patient)
    assert patient["patient_id"] == stored.PatientID and patient["patient_name"] == ""
    (instance,) = _rows(app, t.instance)
    metadata = json.loads(instance["metadata_json"])
    assert metadata["00100010"].get("Value") is None
    assert metadata["00100020"]["Value"] == [stored.PatientID]
    assert metadata["00080018"]["Value"] == [new_sop]
    assert metadata["00120062"]["Value"] == ["YES"]


def test_uploads_of_one_study_land_in_one_study_row_and_references_are_rewritten(make_app):
    app = make_app(**BASIC)
    client = app.test_client()
    first = make_dataset("s1", "se1", "i1", patient_name="Doe^Jane", patient_id="MRN-77")
    second = make_dataset("s1", "se1", "i2", patient_name="Doe^Jane", patient_id="MRN-77", InstanceNumber=2)
    third = make_dataset("s1", "se2", "i3", patient_name="Doe^Jane", patient_id="MRN-77", InstanceNumber=3)
    reference = pydicom.Dataset()
    reference.ReferencedSOPClassUID = first.SOPClassUID
    reference.ReferencedSOPInstanceUID = first.SOPInstanceUID
    third.ReferencedImageSequence = pydicom.Sequence([reference])

    r1 = _store(client, [to_bytes(first), to_bytes(second)])
    r2 = _store(client, [to_bytes(third)])
    assert (r1.status_code, r2.status_code) == (202, 202)
    assert all(value(i, "00081196") == 0xB000 for r in (r1, r2) for i in seq_values(r.get_json(), "00081199"))

    (study,) = _rows(app, t.study)
    assert study["study_instance_uid"] == _new(first.StudyInstanceUID)
    assert study["number_of_instances"] == 3 and study["number_of_series"] == 2
    assert {s["series_instance_uid"] for s in _rows(app, t.series)} == {_new(first.SeriesInstanceUID),
                                                                          _new(third.SeriesInstanceUID)}
    assert {i["sop_instance_uid"] for i in _rows(app, t.instance)} == {
        _new(d.SOPInstanceUID) for d in (first, second, third)}
    stored_third = _read_blob(app, _new(third.SOPInstanceUID))
    assert stored_third.ReferencedImageSequence[0].ReferencedSOPInstanceUID == _new(first.SOPInstanceUID)
    index = _all_index_text(app)
    assert "Doe" not in index and "MRN-77" not in index and "ACC-s1" not in index

    # QIDO finds the de-identified values only.
    assert _qido(client, "/api/studies?PatientID=MRN-77") == []
    assert _qido(client, "/api/studies?PatientName=Doe*") == []
    assert _qido(client, f"/api/studies?StudyInstanceUID={first.StudyInstanceUID}") == []
    (hit,) = _qido(client, f"/api/studies?PatientID={stored_third.PatientID}")
    assert value(hit, "0020000D") == _new(first.StudyInstanceUID)

    # The same instance again (same secret) maps to the same UID: a duplicate.
    again = _store(client, [to_bytes(make_dataset("s1", "se1", "i1"))])
    assert again.status_code == 409
    assert value(seq_values(again.get_json(), "00081198")[0], "00081197") == 0x0111


def test_consistent_across_a_restart_with_the_generated_key(tmp_path):
    config = write_web_config(tmp_path, {
        "app:enableAnonymizer": "true", "app:anonymizerOptions": "BasicProfile,RetainLongFullDates",
    })
    first = create_app(config, environ={})
    key_file = tmp_path / "App_Data" / "anonymizer.key"
    assert key_file.is_file()
    response = _store(first.test_client(), [make_instance("r", "r", "1")])
    assert response.status_code == 202
    first.extensions["dicomcloud"].engine.dispose()

    second = create_app(config, environ={})          # a restart: same key file, same mapping
    response = _store(second.test_client(), [make_instance("r", "r", "2")])
    assert response.status_code == 202
    (study,) = _rows(second, t.study)
    assert study["number_of_instances"] == 2
    assert study["study_date"] == "20240102"          # Retain Longitudinal Full Dates
    second.extensions["dicomcloud"].engine.dispose()


def test_study_in_the_url_is_the_original_study_uid(make_app):
    app = make_app(**BASIC)
    ds = make_dataset("u", "u", "1")
    response = _store(app.test_client(), [to_bytes(ds)], study=ds.StudyInstanceUID)
    assert response.status_code == 202, response.data
    expected = f"http://localhost/api/studies/{_new(ds.StudyInstanceUID)}"
    assert value(response.get_json(), "00081190") == expected


def test_retain_uids_keeps_the_uids(make_app):
    # The DICOMcloud default options: BasicProfile,RetainUIDs,RetainLongFullDates,RetainPatientChars
    app = make_app(**{"app:enableAnonymizer": "true", "app:anonymizerUidSecret": SECRET})
    client = app.test_client()
    ds = make_dataset("k", "k", "1", patient_name="Doe^Jane", StudyDescription="KNEE")
    response = _store(client, [to_bytes(ds)], study=ds.StudyInstanceUID)
    assert response.status_code == 202
    (item,) = seq_values(response.get_json(), "00081199")
    assert value(item, "00081155") == ds.SOPInstanceUID and value(item, "00081196") == 0xB000
    stored = _read_blob(app, ds.SOPInstanceUID)
    assert (stored.StudyInstanceUID, stored.SeriesInstanceUID) == (ds.StudyInstanceUID, ds.SeriesInstanceUID)
    assert not stored.get("PatientName") and stored.StudyDate == "20240102" and stored.PatientSex == "O"
    assert "StudyDescription" not in stored
    assert [i.CodeValue for i in stored.DeidentificationMethodCodeSequence] == ["113100", "113110", "113108",
                                                                                  "113106"]
    (study,) = _rows(app, t.study)
    assert study["study_instance_uid"] == ds.StudyInstanceUID and study["study_description"] == ""


@pytest.mark.parametrize("name", ["MR_small_implicit.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm",
                                  "JPEG2000.dcm", "SC_rgb_rle_2frame.dcm", "rtplan.dcm", "test-SR.dcm",
                                  "waveform_ecg.dcm"])
def test_other_transfer_syntaxes_and_objects_are_stored_de_identified(make_app, name):
    app = make_app(**BASIC)
    original = pydicom.dcmread(sample_path(name))
    response = _store(app.test_client(), [sample_bytes(name)])
    assert response.status_code == 202, response.data
    stored = _read_blob(app, _new(original.SOPInstanceUID))
    assert stored.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert stored.PatientIdentityRemoved == "YES"
    if "PixelData" in original:
        assert stored.PixelData == original.PixelData
    assert original.PatientID == "" or stored.PatientID != original.PatientID


def test_dicom_json_metadata_parts_are_de_identified_too(make_app):
    app = make_app(**BASIC)
    client = app.test_client()
    ds = make_dataset("J", "s", "1", patient_name="Doe^Jane")
    metadata = ds.to_json_dict(bulk_data_element_handler=lambda e: "pixels-1", bulk_data_threshold=1)
    body = multipart([({"Content-Type": "application/dicom+json"}, json.dumps([metadata]).encode()),
                      ({"Content-Type": "application/octet-stream", "Content-Location": "pixels-1"},
                       ds.PixelData)])
    response = client.post("/api/studies", data=body, headers=stow_headers(type_="application/dicom+json"))
    assert response.status_code == 202, response.data
    stored = _read_blob(app, _new(ds.SOPInstanceUID))
    assert not stored.get("PatientName") and stored.PixelData == ds.PixelData

    # WADO-RS metadata serves what the index stored: the de-identified object.
    url = f"/api/studies/{_new(ds.StudyInstanceUID)}/metadata"
    served = client.get(url, headers={"Accept": "application/dicom+json"})
    assert served.status_code == 200, served.data
    (instance,) = served.get_json()
    assert value(instance, "00080018") == _new(ds.SOPInstanceUID)
    assert "Doe" not in served.get_data(as_text=True)
    assert client.get(f"/api/studies/{ds.StudyInstanceUID}/metadata").status_code == 404


def test_unreadable_part_fails_alone(make_app):
    app = make_app(**BASIC)
    junk = b"\0" * 128 + b"DICM" + b"garbage" * 10
    response = _store(app.test_client(), [junk, make_instance("g", "g", "1")])
    assert response.status_code == 202
    body = response.get_json()
    assert len(seq_values(body, "00081198")) == 1 and len(seq_values(body, "00081199")) == 1


def test_unknown_option_stops_the_start(make_app):
    with pytest.raises(ConfigurationError) as caught:
        make_app(**{"app:enableAnonymizer": "true", "app:anonymizerOptions": "BasicProfile,CleanPixelData"})
    problems = str(caught.value.problems)
    assert "CleanPixelData" in problems and "RetainSafePrivate" in problems


def test_off_by_default_stores_as_sent(tmp_path):
    config = write_web_config(tmp_path, {})
    app = create_app(config, environ={})
    original = pydicom.dcmread(sample_path("CT_small.dcm"))
    response = _store(app.test_client(), [sample_bytes("CT_small.dcm")])
    assert response.status_code == 200
    assert _read_blob(app, original.SOPInstanceUID).PatientName == original.PatientName
    # The profile is built (for WADO-URI anonymize=yes) but its key is only made when first used.
    deidentifier = app.extensions["dicomcloud"].deidentifier
    assert not (tmp_path / "App_Data" / "anonymizer.key").exists()
    deidentifier.deidentify(make_dataset())
    assert (tmp_path / "App_Data" / "anonymizer.key").is_file()
    app.extensions["dicomcloud"].engine.dispose()
