"""WADO-URI against ``python -m app serve`` with plain ``requests`` (dicomweb-client has no WADO-URI API:
its ``wado_url_prefix`` is a path prefix for WADO-RS). Data goes in through STOW-RS over HTTP first."""
from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
import requests
from PIL import Image

from tests.helpers import LiveServer, make_dataset, multipart, sample_bytes, sample_path, stow_headers, to_bytes, \
    write_web_config


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wado-uri-live")
    config = write_web_config(folder, {"app:PacsStorageConnection": "|DataDirectory|/Storage",
                                       "app:PacsDataArchieve": "sqlite:///|DataDirectory|/pacs.sqlite3",
                                       "app:anonymizerOptions": "BasicProfile"})
    live = LiveServer(config)
    ct = sample_bytes("CT_small.dcm")
    person = make_dataset("URI-LIVE", "s", "1", patient_name="Live^Secret", patient_id="LIVE-1")
    response = requests.post(live.url + "/api/studies", data=multipart([ct, sample_bytes("test-SR.dcm"),
                                                                         to_bytes(person)]),
                             headers=stow_headers(), timeout=60)
    assert response.status_code == 200, response.text
    live.ct = pydicom.dcmread(sample_path("CT_small.dcm"))
    live.sr = pydicom.dcmread(sample_path("test-SR.dcm"))
    live.person = person
    yield live
    live.stop()


def params(ds, **extra):
    return dict({"requestType": "WADO", "studyUID": ds.StudyInstanceUID, "seriesUID": ds.SeriesInstanceUID,
                 "objectUID": ds.SOPInstanceUID}, **extra)


@pytest.mark.parametrize("path", ["/api/wadouri", "/wadouri"])
def test_jpeg_png_and_dicom_over_http(server, path):
    jpeg = requests.get(server.url + path, params=params(server.ct), timeout=30)
    assert jpeg.status_code == 200 and jpeg.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).format == "JPEG"
    png = requests.get(server.url + path, params=params(server.ct, contentType="image/png", rows=64,
                                                         windowCenter=40, windowWidth=400), timeout=30)
    picture = Image.open(io.BytesIO(png.content))
    assert png.headers["Content-Type"] == "image/png" and picture.format == "PNG" and picture.size == (64, 64)
    dicom = requests.get(server.url + path, params=params(server.ct, contentType="application/dicom"), timeout=30)
    got = pydicom.dcmread(io.BytesIO(dicom.content))
    assert dicom.headers["Content-Type"] == "application/dicom"
    assert np.array_equal(got.pixel_array, server.ct.pixel_array)


def test_report_anonymize_and_errors_over_http(server):
    html = requests.get(server.url + "/wadouri", params=params(server.sr), timeout=30)
    assert html.headers["Content-Type"] == "text/html; charset=utf-8" and "Diagnosis" in html.text
    anonymous = requests.get(server.url + "/wadouri", params=params(server.person, anonymize="yes"), timeout=30)
    assert anonymous.status_code == 200
    assert b"Live^Secret" not in anonymous.content and b"LIVE-1" not in anonymous.content
    assert pydicom.dcmread(io.BytesIO(anonymous.content)).PatientIdentityRemoved == "YES"
    missing = requests.get(server.url + "/wadouri", params={"requestType": "WADO"}, timeout=30)
    assert missing.status_code == 400 and "studyUID" in missing.json()["message"]
    unknown = requests.get(server.url + "/wadouri", params=params(server.ct, objectUID="1.2.3"), timeout=30)
    assert unknown.status_code == 404
    refused = requests.get(server.url + "/wadouri", params=params(server.ct, contentType="image/jp2"), timeout=30)
    assert refused.status_code == 406
