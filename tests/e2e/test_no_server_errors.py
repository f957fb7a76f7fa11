"""Every documented route answers odd input with a 4xx JSON error (or a success), never a 500.

Deterministic sweep: each path of /openapi.json, with path parameters taken from a stored instance, from
unknown-but-valid UIDs and from malformed values, crossed with hostile query strings and Accept headers.
"""
from __future__ import annotations

import itertools
import random

import pydicom
import pytest

from tests.helpers import multipart, sample_bytes, sample_path, stow_headers

QUERIES = ["", "limit=-1", "offset=abc", "includefield=nonsense", "PatientName=%00", "StudyDate=2020-13-45",
           "window=a,b,c", "viewport=0,0", "quality=500", "annotation=everything", "00100010=*?*",
           "requestType=WADO&studyUID=1&seriesUID=2&objectUID=3&contentType=image/x-unknown",
           "requestType=WADO&rows=-4&columns=abc&region=2,2,1,1&windowCenter=10", "fuzzymatching=maybe",
           "transfer-syntax=1.2.3.4", "TimezoneOffsetFromUTC=+2500", "SOPInstanceUID=" + "1." * 40]
ACCEPTS = [None, "*/*", "image/png", 'multipart/related; type="application/dicom"; transfer-syntax=1.2.3',
           "application/dicom+xml;q=0", "text/html, garbage/;;;"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    from app import create_app
    folder = tmp_path_factory.mktemp("sweep")
    app = create_app(None, environ={}, overrides={
        "app:PacsStorageConnection": str(folder / "Storage"),
        "app:PacsDataArchieve": f"sqlite:///{folder / 'pacs.sqlite3'}",
        "app:tempDirectory": str(folder / "tmp")})
    client = app.test_client()
    for name in ("CT_small.dcm", "SC_rgb_rle_2frame.dcm", "test-SR.dcm"):
        assert client.post("/api/studies", data=multipart([sample_bytes(name)]),
                           headers=stow_headers()).status_code == 200
    ds = pydicom.dcmread(sample_path("SC_rgb_rle_2frame.dcm"), stop_before_pixels=True)
    yield client, ds
    app.extensions["dicomcloud"].engine.dispose()


def _fill(path: str, values: dict) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


def test_no_route_answers_500(stored):
    client, ds = stored
    paths = [p for p, ops in client.get("/openapi.json").get_json()["paths"].items() if "get" in ops]
    known = {"study": ds.StudyInstanceUID, "series": ds.SeriesInstanceUID, "instance": ds.SOPInstanceUID,
             "frames": "1,2", "tag_path": "7FE00010"}
    unknown = {"study": "1.2.3", "series": "1.2.3.4", "instance": "1.2.3.4.5", "frames": "3", "tag_path": "00100010"}
    malformed = {"study": "x'; DROP TABLE study;--", "series": "..", "instance": "%2e%2e", "frames": "0,-1,a",
                 "tag_path": "../../etc/passwd"}
    rng = random.Random(20261125)
    checked = 0
    statuses: dict[int, int] = {}
    for path, values in itertools.product(paths, (known, unknown, malformed)):
        url = _fill(path, values)
        for query in rng.sample(QUERIES, 5):
            for accept in rng.sample(ACCEPTS, 2):
                headers = {"Accept": accept} if accept else {}
                response = client.get(url + ("?" + query if query else ""), headers=headers)
                assert response.status_code < 500, (url, query, accept, response.data[:300])
                if response.status_code >= 400:
                    assert response.is_json, (url, query, accept, response.data[:300])
                response.close()
                checked += 1
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    assert checked > 1000
    assert statuses.get(200, 0) > 20 and statuses.get(404, 0) > 100 and statuses.get(400, 0) > 100, statuses
