"""WADO-RS end to end through HTTP (the Flask test client over the real app on SQLite + a folder).

Every resource of PS3.18 10.4, on pydicom's bundled files (compressed, big endian, deflated, multi-frame,
non-image) and synthetic data: byte-exact where bytes pass through, pixel-exact after lossless transcoding.
"""
from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import generate_frames
from pydicom.pixels import get_decoder
from pydicom.uid import (ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless,
                         RLELossless)

from app.codec.instance import BULK_BASE_TOKEN
from app.dicomweb import media
from tests.helpers import make_dataset, make_instance, multipart, sample_bytes, sample_path, stow_headers, to_bytes

EVRLE = "1.2.840.10008.1.2.1"
LOSSLESS_SOURCES = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm",
                    "MR_small_RLE.dcm", "SC_rgb_rle_2frame.dcm", "MR_small_jpeg_ls_lossless.dcm", "rtdose.dcm",
                    "SC_ybr_full_422_uncompressed.dcm"]
COMPRESSED = ["JPEG2000.dcm", "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_RLE.dcm",
              "SC_rgb_rle_2frame.dcm"]
ALL_FILES = sorted(set(LOSSLESS_SOURCES + COMPRESSED + ["waveform_ecg.dcm", "rtplan.dcm", "test-SR.dcm"]))
TARGETS = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, JPEGLSLossless, JPEG2000Lossless]


# ---- helpers ----------------------------------------------------------------------------------------

def parse_multipart(response) -> list[tuple[dict, bytes]]:
    content_type = media.parse_media_type(response.headers["Content-Type"])
    assert content_type.type == "multipart/related", response.headers["Content-Type"]
    boundary = content_type.param("boundary").encode()
    body = response.get_data()
    assert body.endswith(b"--" + boundary + b"--\r\n")
    parts = []
    for chunk in body.split(b"--" + boundary)[1:-1]:
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, _, content = chunk.partition(b"\r\n\r\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, val = line.partition(":")
            headers[name.strip().lower()] = val.strip()
        parts.append((headers, content))
    return parts


def store(client, *payloads):
    response = client.post("/api/studies", data=multipart(list(payloads)), headers=stow_headers())
    assert response.status_code == 200, response.data
    return response


def paths(ds) -> tuple[str, str, str]:
    study = f"/api/studies/{ds.StudyInstanceUID}"
    series = f"{study}/series/{ds.SeriesInstanceUID}"
    return study, series, f"{series}/instances/{ds.SOPInstanceUID}"


def stored_sample(client, name):
    store(client, sample_bytes(name))
    return pydicom.dcmread(sample_path(name))


def dicom_accept(ts: str | None = None, quoted: bool = True) -> str:
    type_ = '"application/dicom"' if quoted else "application/dicom"
    return f"multipart/related; type={type_}" + (f"; transfer-syntax={ts}" if ts else "")


def one_instance(response) -> tuple[dict, pydicom.Dataset, bytes]:
    assert response.status_code == 200, response.data
    ((headers, body),) = parse_multipart(response)
    return headers, pydicom.dcmread(io.BytesIO(body)), body


def pixels(ds) -> np.ndarray:
    return ds.pixel_array


# ---- instances: negotiation and transcoding ----------------------------------------------------------

@pytest.mark.parametrize("name", ALL_FILES)
def test_as_stored_is_byte_exact(client, name):
    ds = stored_sample(client, name)
    response = client.get(paths(ds)[2], headers={"Accept": dicom_accept("*")})
    headers, _, body = one_instance(response)
    assert body == sample_bytes(name)
    assert headers["content-type"] == f"application/dicom; transfer-syntax={ds.file_meta.TransferSyntaxUID}"
    assert headers["content-location"] == "http://localhost" + paths(ds)[2]
    assert response.headers["Content-Type"].startswith('multipart/related; type="application/dicom"; boundary=')


@pytest.mark.parametrize("name", LOSSLESS_SOURCES)
def test_default_is_explicit_vr_little_endian_and_pixel_exact(client, name):
    ds = stored_sample(client, name)
    headers, got, _ = one_instance(client.get(paths(ds)[2]))      # no Accept at all
    assert got.file_meta.TransferSyntaxUID == EVRLE
    assert headers["content-type"] == f"application/dicom; transfer-syntax={EVRLE}"
    assert got.SOPInstanceUID == ds.SOPInstanceUID
    if "PixelData" in ds:
        assert np.array_equal(pixels(got), pixels(ds))


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm", "MR_small_RLE.dcm",
                                  "SC_rgb_rle_2frame.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_lossless_transcoding_is_pixel_exact(client, name, target):
    ds = stored_sample(client, name)
    headers, got, _ = one_instance(client.get(paths(ds)[2], headers={"Accept": dicom_accept(target)}))
    assert got.file_meta.TransferSyntaxUID == target
    assert headers["content-type"] == f"application/dicom; transfer-syntax={target}"
    assert np.array_equal(pixels(got), pixels(ds))
    assert got.PatientName == ds.PatientName and got.SOPInstanceUID == ds.SOPInstanceUID


def test_lossy_stays_lossy(client):
    ds = stored_sample(client, "SC_rgb_jpeg_dcmtk.dcm")
    instance = paths(ds)[2]
    # No transfer syntax asked: only lossy data exists, so it comes as stored.
    _, _, body = one_instance(client.get(instance, headers={"Accept": dicom_accept()}))
    assert body == sample_bytes("SC_rgb_jpeg_dcmtk.dcm")
    for target in (JPEGLSLossless, JPEG2000Lossless, RLELossless):
        refused = client.get(instance, headers={"Accept": dicom_accept(target)})
        assert refused.status_code == 406
        assert "lossy" in refused.get_json()["message"]
    # Decoded on request, and still says it went through lossy compression.
    _, got, _ = one_instance(client.get(instance, headers={"Accept": dicom_accept(EVRLE)}))
    assert got.file_meta.TransferSyntaxUID == EVRLE
    assert got.LossyImageCompression == "01"
    assert np.array_equal(pixels(got), pixels(ds))


def test_lossy_encoding_is_refused_with_a_reason(client):
    ds = stored_sample(client, "CT_small.dcm")
    response = client.get(paths(ds)[2], headers={"Accept": dicom_accept("1.2.840.10008.1.2.4.50")})
    assert response.status_code == 406
    assert "no encoder" in response.get_json()["message"]
    response = client.get(paths(ds)[2], headers={"Accept": dicom_accept("1.2.3.4")})
    assert response.status_code == 406


def test_32_bit_pixel_data_cannot_be_jpeg_ls(client):
    ds = stored_sample(client, "rtdose.dcm")
    response = client.get(paths(ds)[2], headers={"Accept": dicom_accept(JPEGLSLossless)})
    assert response.status_code == 406
    assert "32-bit" in response.get_json()["message"]


@pytest.mark.parametrize("accept", [
    None, "*/*", "application/dicom", 'multipart/related; type=application/dicom',
    'multipart/related; type="application/dicom"', "multipart/related",
    'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50; q=0.9, '
    'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1; q=0.5',
    'application/json, multipart/related; type="application/dicom"',
])
def test_accept_headers_as_clients_send_them(client, accept):
    ds = stored_sample(client, "CT_small.dcm")
    headers = {"Accept": accept} if accept is not None else {}
    _, got, _ = one_instance(client.get(paths(ds)[2], headers=headers))
    assert got.file_meta.TransferSyntaxUID == EVRLE


def test_q_values_and_fallback_between_syntaxes(client):
    ds = stored_sample(client, "CT_small.dcm")
    accept = (f'multipart/related; type="application/dicom"; transfer-syntax={RLELossless}; q=0.4, '
              f'multipart/related; type=application/dicom; transfer-syntax={JPEGLSLossless}; q=0.8')
    _, got, _ = one_instance(client.get(paths(ds)[2], headers={"Accept": accept}))
    assert got.file_meta.TransferSyntaxUID == JPEGLSLossless
    # The first choice cannot be produced (lossy encoding): the next acceptable one is used.
    accept = f'{dicom_accept("1.2.840.10008.1.2.4.50")}, {dicom_accept(RLELossless, quoted=False)}'
    _, got, _ = one_instance(client.get(paths(ds)[2], headers={"Accept": accept}))
    assert got.file_meta.TransferSyntaxUID == RLELossless


@pytest.mark.parametrize("accept", ["application/dicom+json", "image/png", 'multipart/related; type="image/jpeg"'])
def test_unacceptable_media_types_are_406(client, accept):
    ds = stored_sample(client, "CT_small.dcm")
    response = client.get(paths(ds)[2], headers={"Accept": accept})
    assert response.status_code == 406
    assert "application/dicom" in response.get_json()["message"]


def test_study_and_series_stream_every_instance_in_order(client):
    instances = [make_instance("ST", "a", f"i{n}", InstanceNumber=n, seed=n) for n in (3, 1, 2)]
    other_series = make_instance("ST", "b", "x", SeriesNumber=2)
    store(client, *instances, other_series)
    ds = pydicom.dcmread(io.BytesIO(instances[0]))
    study, series, _ = paths(ds)
    response = client.get(series, headers={"Accept": dicom_accept("*")})
    assert response.is_streamed
    bodies = [body for _, body in parse_multipart(response)]
    assert [pydicom.dcmread(io.BytesIO(b)).InstanceNumber for b in bodies] == [1, 2, 3]
    assert sorted(bodies) == sorted(instances)            # pass-through: the stored bytes
    parts = parse_multipart(client.get(study))
    assert len(parts) == 4
    assert [pydicom.dcmread(io.BytesIO(b)).SeriesNumber for _, b in parts] == [1, 1, 1, 2]


def test_study_mixing_images_and_non_images_with_a_compressed_syntax(client):
    store(client, sample_bytes("CT_small.dcm"))
    sr = pydicom.dcmread(sample_path("test-SR.dcm"))
    ct = pydicom.dcmread(sample_path("CT_small.dcm"))
    sr.StudyInstanceUID = ct.StudyInstanceUID
    store(client, to_bytes(sr))
    parts = parse_multipart(client.get(paths(ct)[0], headers={"Accept": dicom_accept(RLELossless)}))
    syntaxes = sorted(h["content-type"].rsplit("=", 1)[1] for h, _ in parts)
    assert syntaxes == sorted([RLELossless, EVRLE])       # the SR has no pixels to compress


def test_unknown_and_malformed_uids(client):
    ds = stored_sample(client, "CT_small.dcm")
    study, series, instance = paths(ds)
    for url in ("/api/studies/1.2.3", f"{study}/series/1.2.3", f"{series}/instances/1.2.3",
                f"{series}/instances/1.2.3/frames/1", f"{series}/instances/1.2.3/metadata",
                f"{series}/metadata".replace(ds.SeriesInstanceUID, "1.2.3"), "/api/studies/1.2.3/metadata",
                f"{series}/instances/1.2.3/rendered", "/api/studies/1.2.3/thumbnail",
                f"{series}/instances/1.2.3/bulkdata/7FE00010", f"{instance}/bulkdata/00091234"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.get_json()["status"] == 404
    for url in ("/api/studies/abc", f"{study}/series/1..2", f"{series}/instances/01.2/metadata"):
        assert client.get(url).status_code == 400, url


def test_dicomcloud_aliases(client):
    ds = stored_sample(client, "CT_small.dcm")
    study, series, instance = (p.replace("/api/", "/wadors/", 1) for p in paths(ds))
    _, got, _ = one_instance(client.get(instance))
    assert got.SOPInstanceUID == ds.SOPInstanceUID
    assert client.get(series + "/metadata").status_code == 200
    assert client.get(instance + "/frames/1").status_code == 200
    assert client.get(study + "/rendered").status_code == 200


# ---- frames -----------------------------------------------------------------------------------------

def _frames(client, url, accept=None):
    response = client.get(url, headers={"Accept": accept} if accept else {})
    assert response.status_code == 200, response.data
    return parse_multipart(response)


def test_native_frames_are_byte_ranges_of_the_pixel_data(client):
    ds = stored_sample(client, "rtdose.dcm")
    instance = paths(ds)[2]
    size = ds.Rows * ds.Columns * ds.BitsAllocated // 8
    parts = _frames(client, instance + "/frames/1,3,15", 'multipart/related; type="application/octet-stream"')
    assert [body for _, body in parts] == [ds.PixelData[(n - 1) * size:n * size] for n in (1, 3, 15)]
    for (headers, _), number in zip(parts, (1, 3, 15)):
        assert headers["content-type"] == f"application/octet-stream; transfer-syntax={EVRLE}"
        assert headers["content-location"] == f"http://localhost{instance}/frames/{number}"


@pytest.mark.parametrize("frame_list", ["16", "0", "1,16", "a", "1,,2", "-1", "1;2", "1.5", "%20"])
def test_bad_frame_numbers_are_400(client, frame_list):
    ds = stored_sample(client, "rtdose.dcm")
    response = client.get(paths(ds)[2] + "/frames/" + frame_list)
    assert response.status_code == 400, frame_list
    assert response.get_json()["status"] == 400


def test_frames_of_an_object_without_pixels_are_400(client):
    ds = stored_sample(client, "waveform_ecg.dcm")
    assert client.get(paths(ds)[2] + "/frames/1").status_code == 400


@pytest.mark.parametrize("name", COMPRESSED)
def test_compressed_frames_pass_through_with_their_media_type(client, name):
    ds = stored_sample(client, name)
    count = int(ds.get("NumberOfFrames", 1))
    numbers = ",".join(str(n) for n in range(1, count + 1))
    stored_ts = ds.file_meta.TransferSyntaxUID
    expected = list(generate_frames(ds.PixelData, number_of_frames=count))
    for accept in (None, 'multipart/related; type="*/*"', 'multipart/related; type="application/octet-stream"; '
                                                           'transfer-syntax=*'):
        parts = _frames(client, paths(ds)[2] + f"/frames/{numbers}", accept)
        assert [body for _, body in parts] == expected
        assert all(h["content-type"].endswith(f"transfer-syntax={stored_ts}") for h, _ in parts)


@pytest.mark.parametrize("name", COMPRESSED + ["MR_small_bigendian.dcm", "image_dfl.dcm"])
def test_frames_as_octet_stream_are_decoded_little_endian(client, name):
    ds = stored_sample(client, name)
    count = int(ds.get("NumberOfFrames", 1))
    parts = _frames(client, paths(ds)[2] + "/frames/" + ",".join(str(n) for n in range(1, count + 1)),
                    'multipart/related; type="application/octet-stream"')
    expected = pixels(ds) if count > 1 else pixels(ds)[np.newaxis]
    for (headers, body), frame in zip(parts, expected):
        assert headers["content-type"] == f"application/octet-stream; transfer-syntax={EVRLE}"
        got = np.frombuffer(body, dtype=frame.dtype.newbyteorder("<")).reshape(frame.shape)
        assert np.array_equal(got, frame)


@pytest.mark.parametrize("media_type,ts", [("image/jls", JPEGLSLossless), ("image/jp2", JPEG2000Lossless),
                                           ("image/dicom-rle", RLELossless), ("image/x-jls", JPEGLSLossless)])
@pytest.mark.parametrize("name", ["CT_small.dcm", "SC_rgb_rle_2frame.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_frames_transcoded_to_lossless_media_types(client, name, media_type, ts):
    ds = stored_sample(client, name)
    count = int(ds.get("NumberOfFrames", 1))
    accept = f'multipart/related; type="{media_type}"'
    parts = _frames(client, paths(ds)[2] + "/frames/" + ",".join(str(n) for n in range(1, count + 1)), accept)
    expected = pixels(ds) if count > 1 else pixels(ds)[np.newaxis]
    decoder = get_decoder(ts)
    for (headers, body), frame in zip(parts, expected):
        assert headers["content-type"] == f"{media_type.replace('x-', '')}; transfer-syntax={ts}"
        from pydicom.encaps import encapsulate
        arr, _ = decoder.as_array(encapsulate([body]), rows=ds.Rows, columns=ds.Columns,
                                  samples_per_pixel=ds.SamplesPerPixel, bits_allocated=ds.BitsAllocated,
                                  bits_stored=ds.BitsStored, pixel_representation=ds.PixelRepresentation,
                                  photometric_interpretation=ds.PhotometricInterpretation, number_of_frames=1,
                                  planar_configuration=0, transfer_syntax_uid=ts)
        assert np.array_equal(arr, frame)


def test_frame_media_type_not_producible_is_406_with_reason(client):
    ds = stored_sample(client, "CT_small.dcm")
    response = client.get(paths(ds)[2] + "/frames/1", headers={"Accept": 'multipart/related; type="image/jpeg"'})
    assert response.status_code == 406
    assert "encoder" in response.get_json()["message"]
    lossy = stored_sample(client, "SC_rgb_jpeg_dcmtk.dcm")
    response = client.get(paths(lossy)[2] + "/frames/1", headers={"Accept": 'multipart/related; type="image/jls"'})
    assert response.status_code == 406 and "lossy" in response.get_json()["message"]
    wrong = client.get(paths(ds)[2] + "/frames/1",
                       headers={"Accept": f'multipart/related; type="image/jp2"; transfer-syntax={JPEGLSLossless}'})
    assert wrong.status_code == 406


def test_frame_900_of_1000_reads_only_that_frame(app, client, monkeypatch):
    frames, rows, columns = 1000, 8, 8
    ds = make_dataset("BIGF", "s", "1", rows=rows, columns=columns, frames=frames)
    store(client, to_bytes(ds))
    storage = app.extensions["dicomcloud"].storage
    reads = []
    original_iter, original_open = storage.iter_range, storage.open

    def iter_range(key, start=0, length=None, **kwargs):
        reads.append((start, length))
        return original_iter(key, start, length, **kwargs)

    def open_(key):
        reads.append(("open", key))
        return original_open(key)

    monkeypatch.setattr(storage, "iter_range", iter_range)
    monkeypatch.setattr(storage, "open", open_)
    size = rows * columns * 2
    for number in (1, 900, 1000):
        reads.clear()
        ((_, body),) = _frames(client, paths(ds)[2] + f"/frames/{number}")
        assert body == ds.PixelData[(number - 1) * size:number * size]
        # one ranged read of exactly the frame (the filesystem backend opens the file for it)
        assert [r for r in reads if r[0] != "open"] == [(reads[0][0], size)]
        assert len(reads) == 2


# ---- metadata ---------------------------------------------------------------------------------------

def _bulk_uris(node, found):
    if isinstance(node, dict):
        if "BulkDataURI" in node:
            found.append(node["BulkDataURI"])
        for value in node.values():
            _bulk_uris(value, found)
    elif isinstance(node, list):
        for value in node:
            _bulk_uris(value, found)
    return found


def test_metadata_at_every_level(client):
    store(client, *[make_instance("MD", "a", f"i{n}", InstanceNumber=n) for n in (1, 2)],
          make_instance("MD", "b", "x", SeriesNumber=2))
    ds = pydicom.dcmread(io.BytesIO(make_instance("MD", "a", "i1", InstanceNumber=1)))
    study, series, instance = paths(ds)
    for url, count in ((study, 3), (series, 2), (instance, 1)):
        response = client.get(url + "/metadata")
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/dicom+json"
        body = response.get_json()
        assert len(body) == count
        assert body[0]["00080018"]["Value"] == [ds.SOPInstanceUID]
        uris = _bulk_uris(body, [])
        assert uris and all(u.startswith("http://localhost/api/studies/") for u in uris)
        assert BULK_BASE_TOKEN not in response.get_data(as_text=True)


def test_metadata_follows_the_host_the_client_used_and_wado_rs_url(make_app, tmp_path):
    app = make_app()
    client = app.test_client()
    ds = stored_sample(client, "CT_small.dcm")
    body = client.get(paths(ds)[2] + "/metadata", base_url="https://pacs.example:8443/").get_json()
    assert body[0]["7FE00010"]["BulkDataURI"].startswith(
        f"https://pacs.example:8443/api/studies/{ds.StudyInstanceUID}/")
    configured = make_app(**{"app:WadoRsUrl": "https://proxy.example/dicomweb",
                             "app:PacsDataArchieve": f"sqlite:///{tmp_path / 'other.sqlite3'}",
                             "app:PacsStorageConnection": str(tmp_path / "other")}).test_client()
    store(configured, sample_bytes("CT_small.dcm"))
    body = configured.get(paths(ds)[2] + "/metadata").get_json()
    assert body[0]["7FE00010"]["BulkDataURI"] == (
        f"https://proxy.example/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/bulkdata/7FE00010")


@pytest.mark.parametrize("accept", ['multipart/related; type="application/dicom+xml"',
                                    "multipart/related; type=application/dicom+xml", "application/dicom+xml"])
def test_metadata_as_xml(client, accept):
    store(client, *[make_instance("XML", "a", f"i{n}", InstanceNumber=n) for n in (1, 2)])
    ds = pydicom.dcmread(io.BytesIO(make_instance("XML", "a", "i1")))
    response = client.get(paths(ds)[1] + "/metadata", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith('multipart/related; type="application/dicom+xml"')
    parts = parse_multipart(response)
    assert len(parts) == 2
    from lxml import etree
    root = etree.fromstring(parts[0][1])
    assert root.tag.endswith("NativeDicomModel")
    bulk = root.find(".//{*}DicomAttribute[@tag='7FE00010']/{*}BulkData")
    assert bulk.get("uri").startswith("http://localhost/api/studies/")


def test_metadata_accept_json_and_406(client):
    ds = stored_sample(client, "CT_small.dcm")
    url = paths(ds)[2] + "/metadata"
    assert client.get(url, headers={"Accept": "application/json"}).headers["Content-Type"] == "application/json"
    assert client.get(url, headers={"Accept": "application/dicom+json; q=0.5, text/html; q=1"}).status_code == 200
    response = client.get(url, headers={"Accept": "application/dicom"})
    assert response.status_code == 406
    assert "application/dicom+json" in response.get_json()["message"]


def test_metadata_etag(client):
    ds = stored_sample(client, "CT_small.dcm")
    url = paths(ds)[1] + "/metadata"
    first = client.get(url)
    etag = first.headers["ETag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    store(client, make_instance("other", "x", "y", StudyInstanceUID=ds.StudyInstanceUID,
                                SeriesInstanceUID=ds.SeriesInstanceUID))
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert len(changed.get_json()) == 2


def test_series_metadata_parses_no_dicom(client, monkeypatch):
    store(client, *[make_instance("NP", "a", f"i{n}", InstanceNumber=n) for n in range(5)])
    ds = pydicom.dcmread(io.BytesIO(make_instance("NP", "a", "i1")))

    def forbidden(*args, **kwargs):
        raise AssertionError("series metadata must not parse DICOM")

    monkeypatch.setattr(pydicom, "dcmread", forbidden)
    monkeypatch.setattr(pydicom.Dataset, "from_json", forbidden)
    response = client.get(paths(ds)[1] + "/metadata")
    assert response.status_code == 200 and len(response.get_json()) == 5


# ---- bulk data --------------------------------------------------------------------------------------

def _element(ds, path: str):
    parts = path.split("/")
    current = ds
    for index in range(0, len(parts) - 1, 2):
        current = current[int(parts[index], 16)].value[int(parts[index + 1])]
    return current[int(parts[-1], 16)]


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_bulk_data_uri_resolves(client, name):
    ds = stored_sample(client, name)
    metadata = client.get(paths(ds)[2] + "/metadata").get_json()[0]
    uris = _bulk_uris(metadata, [])
    assert uris or name in ("test-SR.dcm", "rtplan.dcm")
    for uri in uris:
        path = uri.split("/bulkdata/", 1)[1]
        response = client.get(uri.replace("http://localhost", ""))
        assert response.status_code == 200, (uri, response.data)
        parts = parse_multipart(response)
        element = _element(ds, path)
        if path in ("7FE00010",) and ds.file_meta.TransferSyntaxUID.is_compressed:
            count = int(ds.get("NumberOfFrames", 1))
            assert [b for _, b in parts] == list(generate_frames(ds.PixelData, number_of_frames=count))
            continue
        ((headers, body),) = parts
        assert headers["content-location"] == uri
        assert headers["content-type"].startswith("application/octet-stream")
        value = element.value
        if ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.2" and element.VR in ("OW", "OF", "OL", "OD"):
            unit = {"OW": 2, "OF": 4, "OL": 4, "OD": 8}[element.VR]
            value = np.frombuffer(value, dtype=f">u{unit}").astype(f"<u{unit}").tobytes()
        assert body == value, uri


def test_bulk_data_ranges(client):
    ds = stored_sample(client, "CT_small.dcm")
    url = paths(ds)[2] + "/bulkdata/7FE00010"
    data = ds.PixelData
    single = client.get(url, headers={"Accept": "application/octet-stream", "Range": "bytes=10-19"})
    assert single.status_code == 206
    assert single.get_data() == data[10:20]
    assert single.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert single.headers["Content-Location"] == "http://localhost" + url
    assert single.headers["Content-Type"].startswith("application/octet-stream")
    suffix = client.get(url, headers={"Accept": "application/octet-stream", "Range": "bytes=-4"})
    assert suffix.status_code == 206 and suffix.get_data() == data[-4:]
    open_ended = client.get(url, headers={"Accept": "application/octet-stream", "Range": "bytes=100-"})
    assert open_ended.get_data() == data[100:]
    multipart_range = client.get(url, headers={"Range": "bytes=0-99"})      # dicomweb-client style
    assert multipart_range.status_code == 206
    ((headers, body),) = parse_multipart(multipart_range)
    assert body == data[:100] and headers["content-range"] == f"bytes 0-99/{len(data)}"
    whole = client.get(url, headers={"Accept": "application/octet-stream"})
    assert whole.status_code == 200 and whole.get_data() == data
    outside = client.get(url, headers={"Accept": "application/octet-stream", "Range": f"bytes={len(data)}-"})
    assert outside.status_code == 416
    assert outside.headers["Content-Range"] == f"bytes */{len(data)}"


def test_bulk_data_of_unknown_path_and_bad_accept(client):
    ds = stored_sample(client, "CT_small.dcm")
    instance = paths(ds)[2]
    assert client.get(instance + "/bulkdata/00100010").status_code == 404       # not bulk data
    assert client.get(instance + "/bulkdata/xyz/1/2").status_code == 404
    assert client.get(instance + "/bulkdata/7FE00010", headers={"Accept": "image/png"}).status_code == 406


# ---- rendered and thumbnail -------------------------------------------------------------------------

def _image(response) -> Image.Image:
    assert response.status_code == 200, response.data
    return Image.open(io.BytesIO(response.get_data()))


@pytest.mark.parametrize("accept,fmt", [(None, "JPEG"), ("image/jpeg", "JPEG"), ("image/png", "PNG"),
                                        ("image/gif", "GIF"), ("image/*", "JPEG"),
                                        ('multipart/related; type="image/png"', "PNG")])
def test_rendered_instance_formats(client, accept, fmt):
    ds = stored_sample(client, "CT_small.dcm")
    response = client.get(paths(ds)[2] + "/rendered", headers={"Accept": accept} if accept else {})
    image = _image(response)
    assert image.format == fmt
    assert response.headers["Content-Type"] == Image.MIME[fmt]
    assert image.size == (ds.Columns, ds.Rows)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm", "JPEG2000.dcm",
                                  "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_RLE.dcm",
                                  "SC_ybr_full_422_uncompressed.dcm", "MR_small_implicit.dcm"])
def test_rendered_every_syntax(client, name):
    ds = stored_sample(client, name)
    image = _image(client.get(paths(ds)[2] + "/rendered", headers={"Accept": "image/png"}))
    assert image.size == (ds.Columns, ds.Rows)
    assert image.mode == ("L" if ds.SamplesPerPixel == 1 else "RGB")
    assert np.asarray(image).std() > 5           # not blank


def test_rendered_color_is_right(client):
    ds = stored_sample(client, "SC_rgb_rle_2frame.dcm")
    response = client.get(paths(ds)[2] + "/frames/1/rendered", headers={"Accept": "image/png"})
    assert np.array_equal(np.asarray(_image(response)), ds.pixel_array[0])
    ybr = stored_sample(client, "SC_ybr_full_422_uncompressed.dcm")
    image = np.asarray(_image(client.get(paths(ybr)[2] + "/rendered", headers={"Accept": "image/png"})))
    # pydicom 3's pixel_array is already RGB for YBR_FULL_422 (converting it again turns red into green);
    # every colour encoding is checked in test_rendered_colors.py.
    expected = ybr.pixel_array
    assert np.abs(image.astype(int) - expected.astype(int)).max() <= 1
    assert tuple(image[0, 0]) == (254, 0, 0)


def _mono(**kwargs):
    ds = make_dataset("MONO", "s", kwargs.pop("instance", "1"), rows=4, columns=4, **kwargs)
    ds.PixelData = np.arange(16, dtype=np.uint16).reshape(4, 4).__mul__(100).tobytes()
    return ds


def test_window_rescale_and_monochrome1(client):
    ds = _mono(RescaleSlope=2, RescaleIntercept=-100, WindowCenter=700, WindowWidth=1400)
    inverted = _mono(instance="2", PhotometricInterpretation="MONOCHROME1")
    store(client, to_bytes(ds), to_bytes(inverted))
    url = paths(ds)[2] + "/rendered"
    png = {"Accept": "image/png"}
    values = np.asarray(_image(client.get(url, headers=png))).astype(int)
    # rescaled values 2*p-100 = -100..2900 through the window 700 +- 700: 0 .. 255 clipped
    stored_px = np.arange(16).reshape(4, 4) * 100
    modality = 2 * stored_px - 100
    expected = np.clip((modality - (700 - 0.5)) / (1400 - 1) + 0.5, 0, 1) * 255
    assert np.abs(values - expected).max() <= 1
    wide = np.asarray(_image(client.get(url + "?window=1400,2800", headers=png))).astype(int)
    assert not np.array_equal(wide, values)
    exact = np.asarray(_image(client.get(url + "?window=1400,3000,linear-exact", headers=png))).astype(int)
    assert np.abs(exact - np.clip((modality - 1400) / 3000 + 0.5, 0, 1) * 255).max() <= 1
    assert client.get(url + "?window=1,1,sigmoid", headers=png).status_code == 200
    mono1 = np.asarray(_image(client.get(paths(inverted)[2] + "/rendered", headers=png))).astype(int)
    mono2_same = _mono(instance="3")
    store(client, to_bytes(mono2_same))
    mono2 = np.asarray(_image(client.get(paths(mono2_same)[2] + "/rendered", headers=png))).astype(int)
    assert np.array_equal(mono1, 255 - mono2)


def test_palette_color(client):
    ds = _mono(instance="pal", PhotometricInterpretation="PALETTE COLOR", BitsAllocated=8, BitsStored=8,
               HighBit=7)
    ds.PixelData = np.arange(16, dtype=np.uint8).reshape(4, 4).tobytes()
    ramp = np.arange(256, dtype=np.uint16)
    ds.RedPaletteColorLookupTableDescriptor = [256, 0, 16]
    ds.GreenPaletteColorLookupTableDescriptor = [256, 0, 16]
    ds.BluePaletteColorLookupTableDescriptor = [256, 0, 16]
    ds.RedPaletteColorLookupTableData = (ramp * 256).tobytes()
    ds.GreenPaletteColorLookupTableData = np.zeros(256, np.uint16).tobytes()
    ds.BluePaletteColorLookupTableData = ((255 - ramp) * 256).tobytes()
    store(client, to_bytes(ds))
    image = np.asarray(_image(client.get(paths(ds)[2] + "/rendered", headers={"Accept": "image/png"})))
    assert image.shape == (4, 4, 3)
    index = np.arange(16).reshape(4, 4)
    assert np.abs(image[..., 0].astype(int) - index).max() <= 1
    assert image[..., 1].max() == 0
    assert np.abs(image[..., 2].astype(int) - (255 - index)).max() <= 1


def test_viewport_quality_and_annotation(client):
    ds = stored_sample(client, "CT_small.dcm")
    url = paths(ds)[2] + "/rendered"
    assert _image(client.get(url + "?viewport=32,32")).size == (32, 32)
    assert _image(client.get(url + "?viewport=200,100")).size == (100, 100)        # aspect kept
    cropped = _image(client.get(url + "?viewport=64,64,0,0,32,32", headers={"Accept": "image/png"}))
    assert cropped.size == (64, 64)
    low = client.get(url + "?quality=5").get_data()
    high = client.get(url + "?quality=100").get_data()
    assert len(low) < len(high)
    plain = np.asarray(_image(client.get(url, headers={"Accept": "image/png"})))
    annotated = np.asarray(_image(client.get(url + "?annotation=patient,technique",
                                             headers={"Accept": "image/png"})))
    assert annotated.shape[:2] == plain.shape[:2] and not np.array_equal(annotated[..., 0] if annotated.ndim == 3
                                                                         else annotated, plain)


@pytest.mark.parametrize("query", ["window=1", "window=a,b", "window=1,0", "window=1,2,cubic", "viewport=0,10",
                                   "viewport=10", "viewport=1.5,2", "quality=0", "quality=101", "quality=x",
                                   "annotation=everything", "viewport=10,10,-1,0,5,5", "window=nan,nan",
                                   "window=1,inf"])
def test_bad_rendering_parameters_are_400(client, query):
    ds = stored_sample(client, "CT_small.dcm")
    response = client.get(paths(ds)[2] + "/rendered?" + query)
    assert response.status_code == 400, query


def test_rendered_multi_frame_study_and_series(client):
    ds = stored_sample(client, "SC_rgb_rle_2frame.dcm")
    study, series, instance = paths(ds)
    parts = parse_multipart(client.get(instance + "/rendered"))
    assert len(parts) == 2
    assert parts[1][0]["content-location"] == f"http://localhost{instance}/frames/2/rendered"
    assert all(Image.open(io.BytesIO(b)).format == "JPEG" for _, b in parts)
    frame = _image(client.get(instance + "/frames/2/rendered", headers={"Accept": "image/png"}))
    assert np.array_equal(np.asarray(frame), ds.pixel_array[1])
    assert len(parse_multipart(client.get(instance + "/frames/1,2/rendered"))) == 2
    assert client.get(instance + "/frames/3/rendered").status_code == 400
    assert len(parse_multipart(client.get(series + "/rendered"))) == 2
    assert len(parse_multipart(client.get(study + "/rendered"))) == 2


def test_rendered_of_non_image_is_406(client):
    ds = stored_sample(client, "test-SR.dcm")
    assert client.get(paths(ds)[2] + "/rendered").status_code == 406
    assert client.get(paths(ds)[2] + "/thumbnail").status_code == 406


def test_thumbnails(client):
    ds = stored_sample(client, "rtdose.dcm")
    ct = stored_sample(client, "CT_small.dcm")
    for url in [*paths(ds), paths(ds)[2] + "/frames/3", *paths(ct)]:
        image = _image(client.get(url + "/thumbnail"))
        assert image.format == "JPEG"
        assert max(image.size) == 128
    assert _image(client.get(paths(ct)[2] + "/thumbnail?viewport=64,64",
                             headers={"Accept": "image/gif"})).size == (64, 64)
    assert client.get(paths(ds)[2] + "/frames/99/thumbnail").status_code == 400


def test_accept_for_rendered_resources(client):
    ds = stored_sample(client, "CT_small.dcm")
    url = paths(ds)[2] + "/rendered"
    assert client.get(url, headers={"Accept": "application/dicom"}).status_code == 406
    both = client.get(url, headers={"Accept": "image/jpeg; q=0.2, image/png"})
    assert both.headers["Content-Type"] == "image/png"


def test_nothing_is_500_for_odd_input(client):
    ds = stored_sample(client, "CT_small.dcm")
    study, series, instance = paths(ds)
    odd = [instance + "/frames/" + "1," * 3000 + "1", instance + "/bulkdata/", instance + "/bulkdata/7FE00010/0",
           instance + "/bulkdata/0008/x/y", instance + "/rendered?window=nan,nan",
           instance + "/rendered?viewport=99999,1"]
    for url in odd:
        assert client.get(url).status_code < 500, url
    for accept in ('multipart/related; type="application/dicom"; transfer-syntax=', "multipart/related; type=",
                   ";;;", "*/*; q=abc", 'multipart/related; type="application/dicom"; transfer-syntax="*"'):
        assert client.get(instance, headers={"Accept": accept}).status_code in (200, 406), accept
        assert client.get(instance + "/frames/1", headers={"Accept": accept}).status_code in (200, 406), accept
        assert client.get(instance + "/metadata", headers={"Accept": accept}).status_code in (200, 406), accept


# ---- one bundled file per stored syntax: decoded exactly what pydicom decodes -----------------------

ONE_PER_SYNTAX = ["MR_small_implicit.dcm", "SC_rgb_small_odd.dcm", "image_dfl.dcm",
                  "SC_rgb_small_odd_big_endian.dcm", "SC_rgb_jpeg.dcm", "JPGExtended.dcm", "SC_rgb_jpeg_gdcm.dcm",
                  "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_jls_lossy_sample.dcm", "JPEGLSNearLossless_08.dcm",
                  "MR_small_jp2klossless.dcm", "693_J2KI.dcm", "SC_rgb_rle_16bit_2frame.dcm", "rtdose_rle.dcm",
                  "examples_palette.dcm", "SC_rgb_rle_32bit.dcm", "liver_expb_1frame.dcm"]


def stored_with_uids(client, name):
    """A bundled file, given the identifying UIDs some of them lack (the pixel data kept as it is)."""
    ds = pydicom.dcmread(sample_path(name))
    if "StudyInstanceUID" not in ds or "SeriesInstanceUID" not in ds:
        ds.StudyInstanceUID = ds.get("StudyInstanceUID") or pydicom.uid.generate_uid(entropy_srcs=[name, "st"])
        ds.SeriesInstanceUID = ds.get("SeriesInstanceUID") or pydicom.uid.generate_uid(entropy_srcs=[name, "se"])
        store(client, to_bytes(ds))
    else:
        store(client, sample_bytes(name))
    return ds


@pytest.mark.parametrize("name", ONE_PER_SYNTAX)
def test_every_stored_syntax_decodes_to_explicit_little_endian(client, name):
    ds = stored_with_uids(client, name)
    instance = paths(ds)[2]
    _, got, _ = one_instance(client.get(instance, headers={"Accept": dicom_accept(EVRLE)}))
    assert got.file_meta.TransferSyntaxUID == EVRLE
    assert np.array_equal(pixels(got), pixels(ds))
    count = int(ds.get("NumberOfFrames", 1))
    parts = _frames(client, f"{instance}/frames/{count}", 'multipart/related; type="application/octet-stream"')
    frame = pixels(ds)[count - 1] if count > 1 else pixels(ds)
    ((_, body),) = parts
    if ds.BitsAllocated == 1:     # native 1-bit frames are packed bits, as in the file
        assert body == np.packbits(frame.ravel(), bitorder="little").tobytes()
    else:
        assert np.array_equal(np.frombuffer(body, dtype=frame.dtype.newbyteorder("<")).reshape(frame.shape), frame)
    image = _image(client.get(f"{instance}/frames/{count}/rendered", headers={"Accept": "image/png"}))
    assert image.size == (ds.Columns, ds.Rows)


def test_bundled_palette_color_matches_pydicom(client):
    ds = stored_sample(client, "examples_palette.dcm")
    from pydicom.pixels import apply_color_lut
    expected = apply_color_lut(ds.pixel_array, ds)
    expected = (expected.astype(np.float64) / 65535 * 255 + 0.5).astype(np.uint8) \
        if expected.dtype != np.uint8 else expected
    image = np.asarray(_image(client.get(paths(ds)[2] + "/rendered", headers={"Accept": "image/png"})))
    assert image.shape == expected.shape
    assert np.abs(image.astype(int) - expected.astype(int)).max() <= 1


def test_pixel_data_the_codecs_refuse_is_406_not_a_cut_body(client):
    """JPEG-lossy.dcm: a 12-bit JPEG the installed plugins fail on (pydicom decodes it only with GDCM)."""
    ds = stored_sample(client, "JPEG-lossy.dcm")
    instance = paths(ds)[2]
    for url, accept in ((instance, dicom_accept(EVRLE)),
                        (instance + "/frames/1", 'multipart/related; type="application/octet-stream"'),
                        (instance + "/rendered", None)):
        response = client.get(url, headers={"Accept": accept} if accept else {})
        assert response.status_code == 406, url
        assert "decode" in response.get_json()["message"]
    # as stored it is served all the same
    _, _, body = one_instance(client.get(instance, headers={"Accept": dicom_accept("*")}))
    assert body == sample_bytes("JPEG-lossy.dcm")


def test_zip_of_a_study(client):
    store(client, sample_bytes("CT_small.dcm"))
    ct = pydicom.dcmread(sample_path("CT_small.dcm"))
    other = make_dataset("ZIP", "s", "1", StudyInstanceUID=ct.StudyInstanceUID)
    store(client, to_bytes(other))
    import zipfile
    response = client.get(paths(ct)[0], headers={"Accept": "application/zip; transfer-syntax=*"})
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    names = archive.namelist()
    assert len(names) == 2 and archive.testzip() is None
    assert f"{ct.StudyInstanceUID}/{ct.SeriesInstanceUID}/{ct.SOPInstanceUID}.dcm" in names
    assert archive.read(f"{ct.StudyInstanceUID}/{ct.SeriesInstanceUID}/{ct.SOPInstanceUID}.dcm") == \
        sample_bytes("CT_small.dcm")
    rle = client.get(paths(ct)[2], headers={"Accept": f"application/zip; transfer-syntax={RLELossless}"})
    (name,) = zipfile.ZipFile(io.BytesIO(rle.get_data())).namelist()
    got = pydicom.dcmread(io.BytesIO(zipfile.ZipFile(io.BytesIO(rle.get_data())).read(name)))
    assert got.file_meta.TransferSyntaxUID == RLELossless and np.array_equal(got.pixel_array, ct.pixel_array)
    # a wildcard still means multipart/related
    assert client.get(paths(ct)[2], headers={"Accept": "*/*"}).headers["Content-Type"].startswith("multipart/")


def test_frames_as_stored_do_not_read_the_metadata(client, monkeypatch):
    from app.index import retrieve

    ds = stored_sample(client, "SC_rgb_rle_2frame.dcm")
    native = stored_sample(client, "rtdose.dcm")

    def forbidden(*args, **kwargs):
        raise AssertionError("metadata read for a pass-through frame")

    monkeypatch.setattr(retrieve, "find_metadata", forbidden)
    assert client.get(paths(ds)[2] + "/frames/2").status_code == 200
    assert client.get(paths(native)[2] + "/frames/2").status_code == 200


@pytest.mark.postgres
def test_retrieval_on_postgresql(make_app, postgres_url):
    from sqlalchemy import create_engine

    from app.index.schema import apply_schema
    engine = create_engine(postgres_url)
    apply_schema(engine)
    engine.dispose()
    client = make_app(**{"app:PacsDataArchieve": postgres_url}).test_client()
    instances = [make_instance("PG", "a", f"i{n}", InstanceNumber=n, seed=n) for n in (2, 3, 1)]
    store(client, *instances, make_instance("PG", "b", "x", SeriesNumber=0), sample_bytes("rtdose.dcm"))
    ds = pydicom.dcmread(io.BytesIO(instances[0]))
    study, series, instance = paths(ds)
    assert [pydicom.dcmread(io.BytesIO(b)).InstanceNumber for _, b in parse_multipart(client.get(series))] == \
        [1, 2, 3]
    assert [pydicom.dcmread(io.BytesIO(b)).SeriesNumber for _, b in parse_multipart(client.get(study))] == \
        [0, 1, 1, 1]
    metadata = client.get(series + "/metadata").get_json()
    assert [m["00200013"]["Value"][0] for m in metadata] == [1, 2, 3]
    dose = pydicom.dcmread(sample_path("rtdose.dcm"))
    size = dose.Rows * dose.Columns * 4
    ((_, frame),) = _frames(client, paths(dose)[2] + "/frames/7")
    assert frame == dose.PixelData[6 * size:7 * size]
    assert client.get(series.replace(ds.SeriesInstanceUID, "1.2.3") + "/metadata").status_code == 404


def test_stored_bytes_go_out_with_an_exact_content_length(client):
    """Pass-through study retrieval declares Content-Length (no chunked coding), and it is exact."""
    names = ["CT_small.dcm", "MR_small_RLE.dcm"]
    for name in names:
        assert client.post("/api/studies", data=multipart([sample_bytes(name)]),
                           headers=stow_headers()).status_code == 200
    ds = pydicom.dcmread(sample_path("CT_small.dcm"), stop_before_pixels=True)
    response = client.get(f"/api/studies/{ds.StudyInstanceUID}",
                          headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    body = response.get_data()
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(body)
    assert sample_bytes("CT_small.dcm") in body
    transcoded = client.get(f"/api/studies/{ds.StudyInstanceUID}",
                            headers={"Accept": 'multipart/related; type="application/dicom"; '
                                               'transfer-syntax=1.2.840.10008.1.2'})
    assert transcoded.status_code == 200 and "Content-Length" not in transcoded.headers
