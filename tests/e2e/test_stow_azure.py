"""STOW-RS end to end with the blobs in Azure Blob Storage (Azurite): the same app, only
app:PacsStorageConnection is a connection string. Skipped without DICOMCLOUD_TEST_AZURE_CONNECTION
(scripts/test starts Azurite and sets it); the unreachable-service tests need no emulator.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import func, select

from app.index import tables as t
from app.storage.azure_blob import DEVELOPMENT_KEY
from tests.helpers import (free_port, make_instance, multipart, sample_bytes, sample_path, seq_values,
                           stow_headers, uid, value)

AZURE_CONNECTION = os.environ.get("DICOMCLOUD_TEST_AZURE_CONNECTION")
needs_azurite = pytest.mark.skipif(
    not AZURE_CONNECTION,
    reason="DICOMCLOUD_TEST_AZURE_CONNECTION is not set (scripts/test starts Azurite when npm is available)")

BUNDLED = ["CT_small.dcm", "rtdose.dcm", "SC_rgb_rle_2frame.dcm", "JPEG2000.dcm", "waveform_ecg.dcm"]


def _container_client(name: str):
    from azure.storage.blob import BlobServiceClient
    return BlobServiceClient.from_connection_string(AZURE_CONNECTION).get_container_client(name)


@pytest.fixture
def container():
    """A container name no other test uses; the container (created by the app) is deleted afterwards."""
    if not AZURE_CONNECTION:
        pytest.skip("DICOMCLOUD_TEST_AZURE_CONNECTION is not set (scripts/test starts Azurite)")
    name = "stow-" + uuid.uuid4().hex[:16]
    yield name
    from azure.core.exceptions import ResourceNotFoundError
    try:
        _container_client(name).delete_container()
    except ResourceNotFoundError:
        pass


@pytest.fixture
def azure_app(make_app, container):
    return make_app(**{"app:PacsStorageConnection": AZURE_CONNECTION, "app:PacsStorageContainer": container})


def _services(app):
    return app.extensions["dicomcloud"]


def _rows(app):
    with _services(app).engine.connect() as conn:
        return {r.sop_instance_uid: r for r in conn.execute(select(t.instance))}


def _count(app, table) -> int:
    with _services(app).engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _store(client, parts):
    return client.post("/api/studies", data=multipart(parts), headers=stow_headers())


def _blob_names(container: str) -> list[str]:
    return sorted(b.name for b in _container_client(container).list_blobs(include=["uncommittedblobs"]))


def _download(container: str, key: str) -> bytes:
    return _container_client(container).get_blob_client(key).download_blob().readall()


@needs_azurite
def test_the_container_is_created_when_the_app_starts(make_app, container):
    assert not _container_client(container).exists()
    make_app(**{"app:PacsStorageConnection": AZURE_CONNECTION, "app:PacsStorageContainer": container})
    assert _container_client(container).exists()
    assert _blob_names(container) == []


@needs_azurite
def test_stored_files_are_blobs_byte_for_byte(azure_app, container):
    client = azure_app.test_client()
    originals = {pydicom.dcmread(sample_path(n), stop_before_pixels=True).SOPInstanceUID: sample_bytes(n)
                 for n in BUNDLED}
    made = make_instance("AZ", "s", "multi", frames=3, rows=32, columns=24)
    originals[uid("instance", "AZ", "s", "multi")] = made
    response = _store(client, list(originals.values()))
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert "00081198" not in body
    assert {value(item, "00081155") for item in seq_values(body, "00081199")} == set(originals)

    rows = _rows(azure_app)
    assert set(rows) == set(originals)
    assert _blob_names(container) == sorted(row.blob_key for row in rows.values())
    for sop_uid, original in originals.items():
        row = rows[sop_uid]
        assert sop_uid not in row.blob_key
        assert row.blob_size == len(original)
        assert _download(container, row.blob_key) == original
        properties = _container_client(container).get_blob_client(row.blob_key).get_blob_properties()
        assert properties.content_settings.content_type == "application/dicom"
    assert not list(Path(_services(azure_app).temp_dir).iterdir())


@needs_azurite
def test_frames_and_datasets_read_back_through_the_backend(azure_app):
    client = azure_app.test_client()
    original = sample_bytes("rtdose.dcm")
    assert _store(client, [original]).status_code == 200
    ds = pydicom.dcmread(sample_path("rtdose.dcm"))
    row = _rows(azure_app)[ds.SOPInstanceUID]
    storage = _services(azure_app).storage
    frames = json.loads(row.layout_json)["frames"]
    count = int(ds.NumberOfFrames)
    size = len(ds.PixelData) // count
    assert len(frames) == count == 15
    for index, frame in enumerate(frames):
        stored = b"".join(storage.read_range(row.blob_key, offset, length) for offset, length in frame)
        assert stored == ds.PixelData[index * size:(index + 1) * size]
    with storage.open(row.blob_key) as handle:
        assert pydicom.dcmread(handle).PixelData == ds.PixelData


@needs_azurite
def test_health_reports_the_azure_backend(azure_app):
    response = azure_app.test_client().get("/health")
    assert response.status_code == 200
    assert response.get_json()["storage"] == {"backend": "azureblob", "ok": True}


@needs_azurite
def test_a_replaced_instance_leaves_one_blob(make_app, container):
    app = make_app(**{"app:PacsStorageConnection": AZURE_CONNECTION, "app:PacsStorageContainer": container,
                      "app:storecommand.validateDuplicateInstance": "false"})
    client = app.test_client()
    first = make_instance("R", "s", "1", seed=1)
    second = make_instance("R", "s", "1", seed=2)
    assert _store(client, [first]).status_code == 200
    assert _store(client, [second]).status_code == 200
    (row,) = _rows(app).values()
    assert _blob_names(container) == [row.blob_key]
    assert _download(container, row.blob_key) == second


@needs_azurite
def test_a_container_deleted_while_running_is_created_again(azure_app, container):
    client = azure_app.test_client()
    _container_client(container).delete_container()
    response = _store(client, [make_instance("D", "s", "1")])
    assert response.status_code == 200, response.data
    (row,) = _rows(azure_app).values()
    assert _blob_names(container) == [row.blob_key]


# ---------------------------------------------------------------------- Azure unreachable (no emulator needed)

@pytest.fixture
def unreachable_app(make_app):
    """The app on a connection string whose blob endpoint is a closed port: it starts all the same."""
    connection = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEVELOPMENT_KEY};"
                  f"BlobEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1;")
    return make_app(**{"app:PacsStorageConnection": connection})


def test_the_app_starts_while_azure_is_unreachable_and_health_is_503(unreachable_app):
    response = unreachable_app.test_client().get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["storage"] == {"backend": "azureblob", "ok": False, "error": "StorageError"}
    assert body["database"]["ok"] is True
    assert DEVELOPMENT_KEY not in response.get_data(as_text=True)


def test_a_stow_part_fails_with_0110_and_leaves_no_index_row(unreachable_app):
    client = unreachable_app.test_client()
    response = _store(client, [make_instance("U", "s", "1")])
    assert response.status_code == 409
    (failed,) = seq_values(response.get_json(), "00081198")
    assert value(failed, "00081197") == 0x0110
    assert value(failed, "00081155") == uid("instance", "U", "s", "1")
    assert DEVELOPMENT_KEY not in response.get_data(as_text=True)
    assert _count(unreachable_app, t.instance) == 0 and _count(unreachable_app, t.study) == 0
    assert _count(unreachable_app, t.series) == 0
    assert not list(Path(_services(unreachable_app).temp_dir).iterdir())
