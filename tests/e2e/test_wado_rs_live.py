"""WADO-RS against ``python -m app serve``: the third-party dicomweb-client, and memory while streaming."""
from __future__ import annotations

import time

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.encaps import generate_frames
from pydicom.uid import JPEGLSLossless

import tests.helpers as helpers
from tests.helpers import LiveServer, huge_instance_stream, make_dataset, sample_path, write_web_config


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wado-live")
    port = helpers.free_port()
    # dicomweb-client sends "Host: 127.0.0.1" without the port, so BulkDataURIs built from the Host header
    # would point at port 80: a deployment sets app:WadoRsUrl, as here.
    config = write_web_config(folder, {"app:PacsStorageConnection": "|DataDirectory|/Storage",
                                       "app:PacsDataArchieve": "sqlite:///|DataDirectory|/pacs.sqlite3",
                                       "app:WadoRsUrl": f"http://127.0.0.1:{port}/api"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(helpers, "free_port", lambda: port)
        live = LiveServer(config)
    live.folder = folder
    yield live
    live.stop()


@pytest.fixture(scope="module")
def dwc(server):
    client = DICOMwebClient(url=server.url + "/api")
    files = ["CT_small.dcm", "SC_rgb_rle_2frame.dcm", "JPEG2000.dcm", "rtdose.dcm"]
    client.store_instances(datasets=[pydicom.dcmread(sample_path(name)) for name in files])
    series = [make_dataset("DWCR", "s", f"i{n}", InstanceNumber=n, seed=n) for n in range(1, 4)]
    client.store_instances(datasets=series)
    client.samples = {name: pydicom.dcmread(sample_path(name)) for name in files}
    client.series = series
    return client


def test_retrieve_study_series_instance(dwc):
    first = dwc.series[0]
    study = dwc.retrieve_study(first.StudyInstanceUID)
    assert sorted(ds.SOPInstanceUID for ds in study) == sorted(ds.SOPInstanceUID for ds in dwc.series)
    series = dwc.retrieve_series(first.StudyInstanceUID, first.SeriesInstanceUID)
    assert [ds.InstanceNumber for ds in series] == [1, 2, 3]
    for original, got in zip(dwc.series, series):
        assert got.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        assert np.array_equal(got.pixel_array, original.pixel_array)
    ct = dwc.samples["CT_small.dcm"]
    got = dwc.retrieve_instance(ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID,
                                media_types=(("application/dicom", JPEGLSLossless),))
    assert got.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert np.array_equal(got.pixel_array, ct.pixel_array)
    stored = dwc.retrieve_instance(ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID,
                                   media_types=(("application/dicom", "*"),))
    assert stored.file_meta.TransferSyntaxUID == ct.file_meta.TransferSyntaxUID


def test_retrieve_instance_frames(dwc):
    dose = dwc.samples["rtdose.dcm"]
    frames = dwc.retrieve_instance_frames(dose.StudyInstanceUID, dose.SeriesInstanceUID, dose.SOPInstanceUID,
                                          frame_numbers=[2, 15])
    size = dose.Rows * dose.Columns * 4
    assert frames == [dose.PixelData[size:2 * size], dose.PixelData[14 * size:15 * size]]
    rle = dwc.samples["SC_rgb_rle_2frame.dcm"]
    compressed = dwc.retrieve_instance_frames(rle.StudyInstanceUID, rle.SeriesInstanceUID, rle.SOPInstanceUID,
                                              frame_numbers=[1, 2],
                                              media_types=(("image/dicom-rle", "1.2.840.10008.1.2.5"),))
    assert compressed == list(generate_frames(rle.PixelData, number_of_frames=2))
    decoded = dwc.retrieve_instance_frames(rle.StudyInstanceUID, rle.SeriesInstanceUID, rle.SOPInstanceUID,
                                           frame_numbers=[2], media_types=("application/octet-stream",))
    assert decoded[0] == rle.pixel_array[1].tobytes()
    j2k = dwc.samples["JPEG2000.dcm"]
    (frame,) = dwc.retrieve_instance_frames(j2k.StudyInstanceUID, j2k.SeriesInstanceUID, j2k.SOPInstanceUID,
                                            frame_numbers=[1], media_types=(("image/jp2", "1.2.840.10008.1.2.4.91"),))
    assert frame == next(generate_frames(j2k.PixelData, number_of_frames=1))


def test_retrieve_metadata_and_bulkdata(dwc):
    first = dwc.series[0]
    metadata = dwc.retrieve_series_metadata(first.StudyInstanceUID, first.SeriesInstanceUID)
    assert [item["00080018"]["Value"][0] for item in metadata] == [ds.SOPInstanceUID for ds in dwc.series]
    for item, original in zip(metadata, dwc.series):
        uri = item["7FE00010"]["BulkDataURI"]
        (data,) = dwc.retrieve_bulkdata(uri)
        assert data == original.PixelData
        (head,) = dwc.retrieve_bulkdata(uri, byte_range=(0, 99))
        assert head == original.PixelData[:100]
    study_metadata = dwc.retrieve_study_metadata(first.StudyInstanceUID)
    assert len(study_metadata) == 3
    def fetch(tag, vr, uri):
        (value,) = dwc.retrieve_bulkdata(uri)
        return bytes(value)             # dicomweb-client hands out bytearrays

    ds = pydicom.Dataset.from_json(metadata[0], bulk_data_uri_handler=fetch)
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"       # bulk data comes as Explicit VR LE
    assert np.array_equal(ds.pixel_array, dwc.series[0].pixel_array)
    assert metadata[0]["00083002"]["Value"] == ["1.2.840.10008.1.2.1"]
    rle = dwc.samples["SC_rgb_rle_2frame.dcm"]
    instance_metadata = dwc.retrieve_instance_metadata(rle.StudyInstanceUID, rle.SeriesInstanceUID,
                                                       rle.SOPInstanceUID)
    frames = dwc.retrieve_bulkdata(instance_metadata["7FE00010"]["BulkDataURI"])
    assert frames == list(generate_frames(rle.PixelData, number_of_frames=2))


def test_retrieve_rendered(dwc):
    ct = dwc.samples["CT_small.dcm"]
    image = dwc.retrieve_instance_rendered(ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID,
                                           media_types=("image/png",))
    assert image.startswith(b"\x89PNG")


def test_large_study_streams_with_flat_memory_and_frames_cost_the_same(server):
    frames, rows, columns = 1024, 512, 512                     # 512 MiB of pixel data
    response = requests.post(server.url + "/api/studies", data=huge_instance_stream("WADOBIG", frames, rows, columns),
                             headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=big'},
                             timeout=600)
    assert response.status_code == 200, response.text
    ds = make_dataset("WADOBIG", "s", "1")
    study = f"{server.url}/api/studies/{ds.StudyInstanceUID}"
    instance = f"{study}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    before = server.peak_rss_bytes()
    received = 0
    started = time.perf_counter()
    with requests.get(study, headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
                      stream=True, timeout=600) as streamed:
        assert streamed.status_code == 200
        for chunk in streamed.iter_content(1 << 20):
            received += len(chunk)
    elapsed = time.perf_counter() - started
    growth = server.peak_rss_bytes() - before
    print(f"\n512 MiB study: {received / 2**20:.0f} MiB in {elapsed:.2f} s, peak RSS growth {growth / 2**20:.1f} MiB")
    assert received > frames * rows * columns * 2
    assert growth < 48 * 2**20

    frame_size = rows * columns * 2
    timings = {}
    for number in (1, 900, 1, 900):
        started = time.perf_counter()
        got = requests.get(f"{instance}/frames/{number}", timeout=60)
        timings.setdefault(number, []).append(time.perf_counter() - started)
        assert got.status_code == 200
        assert len(got.content) < frame_size + 1024
    print("frame 1: %.1f ms, frame 900: %.1f ms" % (min(timings[1]) * 1000, min(timings[900]) * 1000))
