"""STOW-RS end to end through HTTP (the Flask test client over the real app on SQLite + a folder)."""
from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from lxml import etree
from pydicom.encaps import generate_frames
from sqlalchemy import func, select, text

from app.index import tables as t
from tests.helpers import (make_dataset, make_instance, multipart, seq_values, stow_headers, sample_path,
                           sample_bytes, to_bytes, uid, value)

# Bundled pydicom files with distinct SOP Instance UIDs covering the transfer syntaxes and object kinds.
BUNDLED = [
    "CT_small.dcm",                      # Explicit VR Little Endian
    "MR_small_implicit.dcm",             # Implicit VR Little Endian
    "MR_small_bigendian.dcm",            # Explicit VR Big Endian (retired)
    "image_dfl.dcm",                     # Deflated Explicit VR Little Endian
    "JPEG2000.dcm",                      # JPEG 2000
    "MR_small_jpeg_ls_lossless.dcm",     # JPEG-LS lossless
    "SC_rgb_jpeg_dcmtk.dcm",             # JPEG baseline
    "MR_small_RLE.dcm",                  # RLE lossless
    "SC_rgb_rle_2frame.dcm",             # RLE, multi-frame
    "rtdose.dcm",                        # native multi-frame (15 frames)
    "waveform_ecg.dcm",                  # waveform, no pixel data
    "rtplan.dcm", "test-SR.dcm",
]


def _services(app):
    return app.extensions["dicomcloud"]


def _instance_row(app, sop_uid):
    with _services(app).engine.connect() as conn:
        return conn.execute(select(t.instance).where(t.instance.c.sop_instance_uid == sop_uid)).first()


def _read_stored(app, sop_uid):
    row = _instance_row(app, sop_uid)
    with _services(app).storage.open(row.blob_key) as handle:
        return pydicom.dcmread(handle)


def _count(app, table) -> int:
    with _services(app).engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _blob_files(app) -> list[Path]:
    root = _services(app).storage.root
    return [p for p in root.rglob("*") if p.is_file()]


def _store(client, parts, study=None, prefix="/api/studies", **header_args):
    url = prefix if study is None else f"{prefix}/{study}"
    return client.post(url, data=multipart(parts), headers=stow_headers(**header_args))


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_file_is_stored_byte_for_byte_and_indexed(app, client, name):
    original = sample_bytes(name)
    ds = pydicom.dcmread(sample_path(name))
    response = _store(client, [original])
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert response.headers["Content-Type"] == "application/dicom+json"
    (item,) = seq_values(body, "00081199")
    assert value(item, "00081155") == ds.SOPInstanceUID
    assert value(item, "00081150") == ds.SOPClassUID
    assert value(item, "00081190") == (f"http://localhost/api/studies/{ds.StudyInstanceUID}/series/"
                                       f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}")
    assert value(body, "00081190") == f"http://localhost/api/studies/{ds.StudyInstanceUID}"
    assert "00081198" not in body

    row = _instance_row(app, ds.SOPInstanceUID)
    storage = _services(app).storage
    assert storage.read_range(row.blob_key, 0, row.blob_size) == original
    assert ds.SOPInstanceUID not in row.blob_key and ds.StudyInstanceUID not in row.blob_key
    assert row.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID
    metadata = json.loads(row.metadata_json)
    assert metadata["00080018"]["Value"] == [ds.SOPInstanceUID]
    if "PixelData" in ds:
        uri = metadata["7FE00010"]["BulkDataURI"]
        assert uri.endswith(f"/instances/{ds.SOPInstanceUID}/bulkdata/7FE00010")
        assert "InlineBinary" not in json.dumps(metadata["7FE00010"])
    if ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1.99":
        assert row.layout_json is None          # deflated: offsets in the file mean nothing
        return
    if "PixelData" in ds:
        frames = json.loads(row.layout_json)["frames"]
        count = int(ds.get("NumberOfFrames", 1))
        assert len(frames) == count
        stored = [b"".join(storage.read_range(row.blob_key, o, n) for o, n in frame) for frame in frames]
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            expected = list(generate_frames(ds.PixelData, number_of_frames=count))
        else:
            size = len(ds.PixelData) // count
            expected = [ds.PixelData[i * size:(i + 1) * size] for i in range(count)]
        assert stored == expected


@pytest.mark.parametrize("name", ["rtstruct.dcm", "no_meta.dcm"])
def test_dataset_without_part10_header_is_refused(app, client, name):
    response = _store(client, [sample_bytes(name)])
    assert response.status_code == 409
    (failed,) = seq_values(response.get_json(), "00081198")
    assert value(failed, "00081197") == 0xC000
    assert "Part-10" in value(failed, "00000902")
    assert _count(app, t.instance) == 0


def test_index_counts_levels_and_modalities(app, client):
    parts = [make_instance("A", "ct", f"i{n}", modality="CT") for n in range(3)]
    parts += [make_instance("A", "mr", f"i{n}", modality="MR") for n in range(2)]
    response = _store(client, parts)
    assert response.status_code == 200
    assert len(seq_values(response.get_json(), "00081199")) == 5
    with _services(app).engine.connect() as conn:
        study = conn.execute(select(t.study)).one()
        assert (study.number_of_series, study.number_of_instances) == (2, 5)
        assert study.modalities_in_study == "CT\\MR"
        counts = dict(conn.execute(select(t.series.c.modality, t.series.c.number_of_instances)).all())
        assert counts == {"CT": 3, "MR": 2}
        assert conn.execute(select(func.count()).select_from(t.patient)).scalar_one() == 1


def test_names_in_other_character_sets_are_stored_as_unicode(app, client):
    from pydicom.data import get_charset_files
    paths = {Path(p).name: p for p in get_charset_files()}
    for name in ("chrH31.dcm", "chrX1.dcm", "chrGerm.dcm"):
        response = _store(client, [Path(paths[name]).read_bytes()])
        assert response.status_code == 200, (name, response.data)
    with _services(app).engine.connect() as conn:
        names = {r.patient_name: r.patient_name_match for r in conn.execute(select(t.patient))}
    assert any("山田" in n for n in names)                      # ISO 2022 IR 87 (Japanese)
    assert any("Wang^XiaoDong=王^小東" == n for n in names)     # ISO_IR 192 (UTF-8)
    assert names["Äneas^Rüdiger"] == "ANEAS^RUDIGER"            # ISO_IR 100, folded for matching


def test_some_parts_fail_others_stored_202(app, client):
    good = make_instance("S", "a", "good")
    no_uid = make_dataset("S", "a", "nouid")
    del no_uid.SeriesInstanceUID
    bad_uid = make_dataset("S", "a", "baduid")
    bad_uid.SOPInstanceUID = "1.2.03.abc"
    bad_uid.file_meta.MediaStorageSOPInstanceUID = "1.2.03.abc"
    response = _store(client, [good, b"this is not DICOM at all", to_bytes(no_uid), to_bytes(bad_uid),
                               ({"Content-Type": "image/jpeg"}, b"\xff\xd8\xff")])
    assert response.status_code == 202, response.data
    body = response.get_json()
    assert len(seq_values(body, "00081199")) == 1
    failed = seq_values(body, "00081198")
    assert [value(f, "00081197") for f in failed] == [0xC000, 0xA900, 0xA900, 0xC000]
    assert value(failed[1], "00081155") == no_uid.SOPInstanceUID
    assert "SeriesInstanceUID" in value(failed[1], "00000902")
    assert value(failed[2], "00081155") == "1.2.03.abc"
    assert _count(app, t.instance) == 1
    assert len(_blob_files(app)) == 1


def test_part_of_another_study_fails_alone(app, client):
    study_a = uid("study", "A")
    response = _store(client, [make_instance("A", "x", "1"), make_instance("B", "x", "1")], study=study_a)
    assert response.status_code == 202
    body = response.get_json()
    (failed,) = seq_values(body, "00081198")
    assert value(failed, "00081197") == 0xA900
    assert value(failed, "00081155") == uid("instance", "B", "x", "1")
    assert value(body, "00081190") == f"http://localhost/api/studies/{study_a}"
    assert _count(app, t.study) == 1


def test_all_parts_failing_is_409_and_nothing_stored(app, client):
    response = _store(client, [b"garbage", b"\x00" * 200])
    assert response.status_code == 409
    assert len(seq_values(response.get_json(), "00081198")) == 2
    assert "00081199" not in response.get_json()
    assert _count(app, t.instance) == 0 and _count(app, t.study) == 0 and not _blob_files(app)


def test_duplicate_is_refused_by_default(app, client):
    data = make_instance("D", "s", "1")
    assert _store(client, [data]).status_code == 200
    response = _store(client, [data])
    assert response.status_code == 409
    (failed,) = seq_values(response.get_json(), "00081198")
    assert value(failed, "00081197") == 0x0111
    assert _count(app, t.instance) == 1 and len(_blob_files(app)) == 1


def test_duplicate_replaces_atomically_when_validation_is_off(make_app):
    app = make_app(**{"app:storecommand.validateDuplicateInstance": "false"})
    client = app.test_client()
    first = make_instance("D", "s", "1", seed=1)
    second = make_instance("D", "s", "1", seed=2)
    assert _store(client, [first]).status_code == 200
    old_key = _instance_row(app, uid("instance", "D", "s", "1")).blob_key
    assert _store(client, [second]).status_code == 200
    row = _instance_row(app, uid("instance", "D", "s", "1"))
    assert row.blob_key != old_key
    assert _services(app).storage.read_range(row.blob_key, 0, row.blob_size) == second
    assert len(_blob_files(app)) == 1
    with _services(app).engine.connect() as conn:
        study = conn.execute(select(t.study)).one()
        assert (study.number_of_series, study.number_of_instances) == (1, 1)
        assert conn.execute(select(t.series.c.number_of_instances)).scalar_one() == 1


def test_same_instance_twice_in_one_request(app, client):
    data = make_instance("T", "s", "1")
    response = _store(client, [data, data])
    assert response.status_code == 202
    assert value(seq_values(response.get_json(), "00081198")[0], "00081197") == 0x0111
    assert _count(app, t.instance) == 1


@pytest.mark.parametrize("content_type", [
    "application/dicom",
    "application/json",
    "multipart/form-data; boundary=x",
    'multipart/related; type="image/jpeg"; boundary=x',
    None,
])
def test_unsupported_media_type_is_415(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/studies", data=b"--x\r\n\r\nabc\r\n--x--\r\n", headers=headers)
    assert response.status_code == 415
    assert response.get_json()["status"] == 415
    assert "multipart/related" in response.get_json()["message"]


def test_missing_boundary_is_400(client):
    response = client.post("/api/studies", data=b"x", headers={"Content-Type": "multipart/related; "
                                                                              "type=application/dicom"})
    assert response.status_code == 400
    assert "boundary" in response.get_json()["message"]


def test_truncated_upload_is_400_and_stores_nothing_of_the_broken_part(app, client):
    body = multipart([make_instance("X", "s", "1"), make_instance("X", "s", "2")])
    truncated = body[: len(body) - 300]
    response = client.post("/api/studies", data=truncated, headers=stow_headers())
    assert response.status_code == 400
    assert "truncated" in response.get_json()["message"]
    # The first, complete part may be stored; the broken one never is, and no temp file stays behind.
    assert _instance_row(app, uid("instance", "X", "s", "2")) is None
    assert not list((Path(_services(app).temp_dir)).iterdir())


def test_wrong_boundary_is_400(client):
    body = multipart([make_instance("X", "s", "1")], boundary="actual")
    response = client.post("/api/studies", data=body, headers=stow_headers(boundary="declared"))
    assert response.status_code == 400
    assert "boundary" in response.get_json()["message"]


@pytest.mark.parametrize("content_type", [
    'multipart/related; type=application/dicom; boundary=b1',
    'multipart/related; boundary="b1"; type="application/dicom"; start="<p1@x>"',
    'Multipart/Related; Type="Application/DICOM"; boundary=b1',
    'multipart/related; boundary=b1',
])
def test_content_type_spellings_clients_send(client, content_type):
    body = multipart([({"Content-Type": "application/dicom", "Content-ID": "<p1@x>"},
                       make_instance("C", "s", "1"))], boundary="b1")
    response = client.post("/api/studies", data=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.data


def test_xml_response_and_not_acceptable(client):
    response = _store(client, [make_instance("X", "s", "1"), b"junk"],
                      accept='multipart/related; type="application/dicom+xml", application/dicom+xml;q=0.9')
    assert response.status_code == 202
    assert response.headers["Content-Type"] == "application/dicom+xml"
    root = etree.fromstring(response.data)
    ns = {"d": "http://dicom.nema.org/PS3.19/models/NativeDICOM"}
    referenced = root.find("d:DicomAttribute[@tag='00081199']", ns)
    assert referenced.get("keyword") == "ReferencedSOPSequence"
    sop = referenced.find("d:Item/d:DicomAttribute[@tag='00081155']/d:Value", ns).text
    assert sop == uid("instance", "X", "s", "1")
    reason = root.find("d:DicomAttribute[@tag='00081198']/d:Item/d:DicomAttribute[@tag='00081197']/d:Value", ns)
    assert reason.text == str(0xC000)

    refused = _store(client, [make_instance("X", "s", "2")], accept="image/png")
    assert refused.status_code == 406
    assert "application/dicom+json" in refused.get_json()["message"]


def test_dicomcloud_aliases(app, client):
    study = uid("study", "AL")
    assert _store(client, [make_instance("AL", "s", "1")], prefix="/stowrs").status_code == 200
    assert _store(client, [make_instance("AL", "s", "2")], prefix="/stowrs/studies").status_code == 200
    response = _store(client, [make_instance("AL", "s", "3")], study=study, prefix="/stowrs/studies")
    assert response.status_code == 200
    assert _count(app, t.instance) == 3


def test_invalid_study_uid_in_url_is_400(client):
    response = _store(client, [make_instance("X", "s", "1")], study="not-a-uid")
    assert response.status_code == 400
    assert "StudyInstanceUID" in response.get_json()["message"]


def test_retrieve_url_uses_configured_wado_rs_url(make_app):
    client = make_app(**{"app:WadoRsUrl": "https://pacs.example.org/dicomweb/"}).test_client()
    body = _store(client, [make_instance("W", "s", "1")]).get_json()
    assert value(body, "00081190").startswith("https://pacs.example.org/dicomweb/studies/")


def test_retrieve_url_follows_the_host_the_client_used(client):
    response = client.post("/api/studies", data=multipart([make_instance("H", "s", "1")]),
                           headers=stow_headers(), base_url="https://viewer.hospital.local:8443")
    assert value(response.get_json(), "00081190").startswith("https://viewer.hospital.local:8443/api/studies/")


def _json_metadata(ds) -> dict:
    return ds.to_json_dict(bulk_data_element_handler=lambda e: "pixels-1", bulk_data_threshold=1)


def test_dicom_json_with_native_bulk_data(app, client):
    ds = make_dataset("J", "s", "1")
    pixel_bytes = ds.PixelData
    metadata = _json_metadata(ds)
    assert metadata["7FE00010"]["BulkDataURI"] == "pixels-1"
    body = multipart([({"Content-Type": "application/dicom+json"}, json.dumps([metadata]).encode()),
                      ({"Content-Type": "application/octet-stream", "Content-Location": "pixels-1"}, pixel_bytes)])
    response = client.post("/api/studies", data=body, headers=stow_headers(type_="application/dicom+json"))
    assert response.status_code == 200, response.data
    row = _instance_row(app, ds.SOPInstanceUID)
    stored = _read_stored(app, row.sop_instance_uid)
    assert stored.PixelData == pixel_bytes
    assert stored.PatientName == "Doe^John"
    assert stored.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"


def test_dicom_json_with_compressed_pixel_data_part(app, client):
    source = pydicom.dcmread(sample_path("SC_rgb_jpeg_dcmtk.dcm"))
    frame = next(generate_frames(source.PixelData, number_of_frames=1))
    metadata = source.to_json_dict(bulk_data_element_handler=lambda e: "http://client/frames/1",
                                   bulk_data_threshold=1)
    body = multipart([
        ({"Content-Type": "application/dicom+json"}, json.dumps(metadata).encode()),
        ({"Content-Type": 'image/jpeg; transfer-syntax="1.2.840.10008.1.2.4.50"',
          "Content-Location": "http://client/frames/1"}, frame),
    ])
    response = client.post("/api/studies", data=body, headers=stow_headers(type_="application/dicom+json"))
    assert response.status_code == 200, response.data
    row = _instance_row(app, source.SOPInstanceUID)
    assert row.transfer_syntax_uid == "1.2.840.10008.1.2.4.50"
    stored = _read_stored(app, row.sop_instance_uid)
    assert next(generate_frames(stored.PixelData, number_of_frames=1)) == frame


def test_dicom_json_with_missing_bulk_part_fails_that_dataset(app, client):
    ds = make_dataset("J", "s", "2")
    good = make_dataset("J", "s", "3")
    metadata = [_json_metadata(ds), good.to_json_dict(bulk_data_threshold=1 << 30)]
    body = multipart([({"Content-Type": "application/dicom+json"}, json.dumps(metadata).encode())])
    response = client.post("/api/studies", data=body, headers=stow_headers(type_="application/dicom+json"))
    assert response.status_code == 202, response.data
    (failed,) = seq_values(response.get_json(), "00081198")
    assert value(failed, "00081155") == ds.SOPInstanceUID
    assert "pixels-1" in value(failed, "00000902")
    assert _instance_row(app, good.SOPInstanceUID) is not None


def test_dicom_json_that_is_not_json(client):
    body = multipart([({"Content-Type": "application/dicom+json"}, b"{not json")])
    response = client.post("/api/studies", data=body, headers=stow_headers(type_="application/dicom+json"))
    assert response.status_code == 409
    assert value(seq_values(response.get_json(), "00081198")[0], "00081197") == 0xC000


def test_dicom_xml_with_bulk_data(app, client):
    from app.codec.native_xml import to_xml
    ds = make_dataset("XML", "s", "1", patient_name="Müller^Jörg")
    xml = to_xml(_json_metadata(ds))
    body = multipart([({"Content-Type": "application/dicom+xml"}, xml),
                      ({"Content-Type": "application/octet-stream", "Content-Location": "pixels-1"},
                       ds.PixelData)])
    response = client.post("/api/studies", data=body, headers=stow_headers(type_="application/dicom+xml"))
    assert response.status_code == 200, response.data
    stored = _read_stored(app, ds.SOPInstanceUID)
    assert str(stored.PatientName) == "Müller^Jörg"
    assert stored.PixelData == ds.PixelData
    assert stored.Rows == 16


def test_index_failure_leaves_no_blob_behind(app, client):
    with _services(app).engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON instance "
                          "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"))
    response = _store(client, [make_instance("F", "s", "1")])
    assert response.status_code == 409
    assert value(seq_values(response.get_json(), "00081198")[0], "00081197") == 0x0110
    assert not _blob_files(app)
    assert _count(app, t.study) == 0 and _count(app, t.series) == 0 and _count(app, t.patient) == 0


def test_storage_failure_leaves_no_index_row(app, client, tmp_path):
    root = _services(app).storage.root
    root.rmdir()
    root.write_text("a file where the storage folder should be")
    response = _store(client, [make_instance("F", "s", "2")])
    assert response.status_code == 409
    assert value(seq_values(response.get_json(), "00081198")[0], "00081197") == 0x0110
    assert _count(app, t.instance) == 0 and _count(app, t.study) == 0
    health = client.get("/health")
    assert health.status_code == 503
    assert health.get_json()["storage"] == {"backend": "filesystem", "ok": False, "error": "StorageError"}


def test_failed_fsync_stores_nothing_of_the_batch(app, client, monkeypatch):
    """Blobs are made durable together before their index rows commit; an fsync error (a failing disk)
    fails the batch's instances and removes their blobs instead of indexing bytes that may be lost."""
    import errno
    import os

    def failing_fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    response = _store(client, [make_instance("F", "s", "3"), make_instance("F", "s", "4")])
    assert response.status_code == 409
    failed = seq_values(response.get_json(), "00081198")
    assert [value(item, "00081197") for item in failed] == [0x0110, 0x0110]
    assert not _blob_files(app)
    assert _count(app, t.instance) == 0 and _count(app, t.study) == 0
    monkeypatch.undo()
    assert _store(client, [make_instance("F", "s", "3")]).status_code == 200


def test_health_names_backends(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok",
                                   "database": {"backend": "sqlite", "ok": True, "schema_version": 1},
                                   "storage": {"backend": "filesystem", "ok": True}}


def test_swagger_ui_works_offline(client):
    page = client.get("/swagger")
    assert page.status_code == 200
    html = page.data.decode()
    tree = etree.HTML(html)
    sources = tree.xpath("//script/@src") + tree.xpath("//link/@href")
    assert sources and all(not s.startswith(("http:", "https:", "//")) for s in sources)
    for source in sources:
        asset = client.get("/" + source)
        assert asset.status_code == 200 and len(asset.data) > 1000, source
        asset.close()
    assert "/openapi.json" in html
    spec = client.get("/openapi.json").get_json()
    for path in ("/api/studies", "/api/studies/{study}", "/stowrs/studies/{study}", "/health"):
        assert path in spec["paths"], path
    assert "post" in spec["paths"]["/api/studies"]


def test_errors_are_json_never_tracebacks(client):
    missing = client.get("/api/nothing-here")
    assert missing.status_code == 404 and missing.get_json()["status"] == 404
    wrong_method = client.delete("/api/studies")
    assert wrong_method.status_code == 405 and wrong_method.get_json()["status"] == 405
