"""WADO-RS with the blobs in Azure Blob Storage (Azurite): the same resources through ranged GETs.
Skipped without DICOMCLOUD_TEST_AZURE_CONNECTION (scripts/test starts Azurite and sets it)."""
from __future__ import annotations

import io
import os
import uuid

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import generate_frames
from pydicom.uid import JPEGLSLossless

from tests.e2e.test_wado_rs import dicom_accept, parse_multipart, paths
from tests.helpers import multipart, sample_bytes, sample_path, stow_headers

AZURE_CONNECTION = os.environ.get("DICOMCLOUD_TEST_AZURE_CONNECTION")


@pytest.fixture
def azure_client(make_app):
    if not AZURE_CONNECTION:
        pytest.skip("DICOMCLOUD_TEST_AZURE_CONNECTION is not set (scripts/test starts Azurite)")
    name = "wado-" + uuid.uuid4().hex[:16]
    app = make_app(**{"app:PacsStorageConnection": AZURE_CONNECTION, "app:PacsStorageContainer": name})
    yield app.test_client()
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient
    try:
        BlobServiceClient.from_connection_string(AZURE_CONNECTION).get_container_client(name).delete_container()
    except ResourceNotFoundError:
        pass


FILES = ["CT_small.dcm", "rtdose.dcm", "SC_rgb_rle_2frame.dcm", "JPEG2000.dcm", "image_dfl.dcm"]


def test_wado_rs_resources_on_azure(azure_client):
    client = azure_client
    response = client.post("/api/studies", data=multipart([sample_bytes(n) for n in FILES]), headers=stow_headers())
    assert response.status_code == 200, response.data
    for name in FILES:
        ds = pydicom.dcmread(sample_path(name))
        study, series, instance = paths(ds)
        ((_, body),) = parse_multipart(client.get(instance, headers={"Accept": dicom_accept("*")}))
        assert body == sample_bytes(name)
        transcoded = client.get(instance, headers={"Accept": dicom_accept(JPEGLSLossless)})
        if ds.BitsAllocated > 16 or ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.91":   # 32-bit; lossy
            assert transcoded.status_code == 406
        else:
            assert transcoded.status_code == 200, (name, transcoded.data)
            ((_, body),) = parse_multipart(transcoded)
            got = pydicom.dcmread(io.BytesIO(body))
            assert got.file_meta.TransferSyntaxUID == JPEGLSLossless
            assert np.array_equal(got.pixel_array, ds.pixel_array)
        count = int(ds.get("NumberOfFrames", 1))
        frames = [b for _, b in parse_multipart(client.get(f"{instance}/frames/{count}"))]
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            assert frames == list(generate_frames(ds.PixelData, number_of_frames=count))[-1:]
        elif name != "image_dfl.dcm":
            size = len(ds.PixelData) // count
            assert frames == [ds.PixelData[(count - 1) * size:count * size]]
        metadata = client.get(instance + "/metadata").get_json()[0]
        assert metadata["00080018"]["Value"] == [ds.SOPInstanceUID]
        image = Image.open(io.BytesIO(client.get(instance + "/thumbnail").get_data()))
        assert max(image.size) == 128
    ct = pydicom.dcmread(sample_path("CT_small.dcm"))
    ranged = client.get(paths(ct)[2] + "/bulkdata/7FE00010",
                        headers={"Accept": "application/octet-stream", "Range": "bytes=100-199"})
    assert ranged.status_code == 206 and ranged.get_data() == ct.PixelData[100:200]
