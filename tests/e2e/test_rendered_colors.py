"""Rendered colour images show the colours of the object, for every colour encoding (WADO-RS /rendered and
WADO-URI contentType=image/png|image/jpeg, through the one rendering path).

The reference is pydicom's, computed independently of the server: the stored values as decoded
(``pydicom.pixels.pixel_array(ds, raw=True)``: no colour conversion), converted with
``pydicom.pixels.convert_color_space`` when the Photometric Interpretation says the values are YBR_FULL or
YBR_FULL_422 (JPEG 2000's YBR_ICT / YBR_RCT are undone by the JPEG 2000 decoder itself), palette colour
through its LUTs, and more than 8 bits scaled to 0..255. The reference must equal pydicom's own RGB
(``ds.pixel_array``, which converts YBR_FULL / YBR_FULL_422 to RGB in pydicom 3).

Every colour file pydicom bundles (its test_files folder, the local part of ``get_testdata_files``, which
would also try to download others; picked by SamplesPerPixel / PALETTE COLOR) and synthetic ones for what
is not bundled: native YBR_FULL (ranged frame reads, planar, and deflated: one parse of the object),
RLE YBR_FULL, JPEG 2000 lossy YBR_ICT.

Before the fix, compressed YBR_FULL / YBR_FULL_422 (JPEG baseline, RLE) and native YBR read by parsing
the object (YBR_FULL_422, deflated) were converted to RGB twice (red 254,0,0 shown as 75,255,27), and
planar big endian RGB was shown with its planes interleaved.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import DATA_ROOT
from pydicom.pixels import apply_color_lut, convert_color_space
from pydicom.pixels import pixel_array as decoded
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, JPEG2000, RLELossless

from tests.helpers import make_dataset, multipart, sample_bytes, stow_headers, to_bytes, uid

YBR = ("YBR_FULL", "YBR_FULL_422")


def _local_test_files() -> list[str]:
    """pydicom's bundled test files (``get_testdata_files`` without its attempt to download others)."""
    return sorted(str(path) for path in (Path(DATA_ROOT) / "test_files").glob("**/*.dcm"))


def _bundled_colour_files() -> list[str]:
    found = []
    for path in _local_test_files():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if "Rows" not in ds or "SOPInstanceUID" not in ds:
            continue
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        if samples > 1 or ds.get("PhotometricInterpretation") == "PALETTE COLOR":
            found.append(os.path.basename(path))
    return sorted(set(found))


BUNDLED = _bundled_colour_files()


def _synthetic() -> dict[str, bytes]:
    """Colour encodings pydicom does not bundle, made from a synthetic RGB image."""
    rows, columns = 48, 64
    y, x = np.mgrid[0:rows, 0:columns]
    rgb = np.stack([x * 4, y * 5, 255 - x * 2], axis=-1).astype(np.uint8)
    rgb[:8, :8] = (255, 0, 0)                                        # saturated patches
    rgb[:8, 8:16] = (0, 255, 0)
    rgb[:8, 16:24] = (0, 0, 255)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")

    def colour(label: str, pixels: np.ndarray, photometric: str):
        ds = make_dataset("COLOUR", "s", label, rows=rows, columns=columns, SamplesPerPixel=3,
                          PhotometricInterpretation=photometric, PlanarConfiguration=0, BitsAllocated=8,
                          BitsStored=8, HighBit=7, modality="OT")
        ds.PixelData = pixels.tobytes()
        return ds

    out = {}
    out["native-ybr-full"] = to_bytes(colour("native-ybr", ybr, "YBR_FULL"))
    planar = colour("native-ybr-planar", np.ascontiguousarray(ybr.transpose(2, 0, 1)), "YBR_FULL")
    planar.PlanarConfiguration = 1
    out["native-ybr-full-planar"] = to_bytes(planar)
    deflated = colour("deflated-ybr", ybr, "YBR_FULL")
    deflated.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    out["deflated-ybr-full"] = to_bytes(deflated)
    rle = colour("rle-ybr", ybr, "YBR_FULL")
    rle.compress(RLELossless, ybr, generate_instance_uid=False)
    out["rle-ybr-full"] = to_bytes(rle)
    j2k = colour("j2k-ict", rgb, "YBR_ICT")          # RGB values in, the encoder applies the ICT
    j2k.compress(JPEG2000, rgb, j2k_cr=[5], generate_instance_uid=False)
    out["j2k-ybr-ict"] = to_bytes(j2k)
    return out


SYNTHETIC = _synthetic()
ALL = BUNDLED + sorted(SYNTHETIC)


def _payload(name: str) -> bytes:
    if name in SYNTHETIC:
        return SYNTHETIC[name]
    payload = sample_bytes(name)
    ds = _read(payload)
    if "StudyInstanceUID" in ds and "SeriesInstanceUID" in ds:
        return payload
    # A few samples (SC_rgb_jls_lossy_*) lack the UIDs STOW requires: add them, the pixel data unchanged.
    ds.StudyInstanceUID = ds.get("StudyInstanceUID") or uid("colour-study", name)
    ds.SeriesInstanceUID = ds.get("SeriesInstanceUID") or uid("colour-series", name)
    return to_bytes(ds)


def _read(payload: bytes) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(payload))


def expected_rgb(ds: pydicom.Dataset, frame: int) -> np.ndarray:
    """The 8-bit RGB image of 1-based ``frame`` (independently of the server)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = decoded(ds, index=frame - 1, raw=True)
        pydicom_rgb = decoded(ds, index=frame - 1)
    photometric = str(ds.PhotometricInterpretation)
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(raw, ds)
        top = 255 if rgb.dtype == np.uint8 else (1 << int(ds.RedPaletteColorLookupTableDescriptor[2])) - 1
        return np.rint(rgb.astype(np.float64) * 255 / top).astype(np.uint8)
    if photometric in YBR:
        reference = convert_color_space(raw, photometric, "RGB")
    else:
        reference = raw
    assert np.array_equal(reference, pydicom_rgb)       # the reference is pydicom's RGB
    if reference.dtype != np.uint8:
        top = (1 << int(ds.BitsStored)) - 1
        reference = np.rint(np.clip(reference.astype(np.float64) / top, 0, 1) * 255).astype(np.uint8)
    return reference


def store(client, payload: bytes) -> None:
    response = client.post("/api/studies", data=multipart([payload]), headers=stow_headers())
    assert response.status_code == 200, response.data


def picture(response) -> np.ndarray:
    assert response.status_code == 200, response.data
    image = Image.open(io.BytesIO(response.get_data()))
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


def rendered_rs(client, ds, frame: int, accept: str = "image/png") -> np.ndarray:
    path = (f"/api/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
            f"{ds.SOPInstanceUID}/frames/{frame}/rendered")
    return picture(client.get(path, headers={"Accept": accept}))


def rendered_uri(client, ds, frame: int, content_type: str) -> np.ndarray:
    query = {"requestType": "WADO", "studyUID": ds.StudyInstanceUID, "seriesUID": ds.SeriesInstanceUID,
             "objectUID": ds.SOPInstanceUID, "contentType": content_type, "frameNumber": frame}
    return picture(client.get("/api/wadouri?" + urlencode(query)))


def frames_of(ds) -> list[int]:
    count = int(ds.get("NumberOfFrames", 1) or 1)
    return [1] if count == 1 else [1, count]


def test_every_kind_of_colour_is_covered():
    photometrics = {str(_read(_payload(name)).PhotometricInterpretation) for name in ALL}
    assert {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT", "PALETTE COLOR"} <= photometrics
    syntaxes = {str(_read(_payload(name)).file_meta.TransferSyntaxUID) for name in ALL}
    assert {ExplicitVRLittleEndian, RLELossless, JPEG2000, "1.2.840.10008.1.2.4.50",
            "1.2.840.10008.1.2.4.90"} <= syntaxes


@pytest.mark.parametrize("name", ALL)
def test_wado_rs_rendered_png_has_the_objects_colours(client, name):
    payload = _payload(name)
    ds = _read(payload)
    store(client, payload)
    for frame in frames_of(ds):
        got = rendered_rs(client, ds, frame)
        expected = expected_rgb(ds, frame).astype(int)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() == 0, (name, frame, got[0, 0], expected[0, 0])


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_dcmtk.dcm", "examples_ybr_color.dcm",
                                  "SC_ybr_full_422_uncompressed.dcm", "GDCMJ2K_TextGBR.dcm",
                                  "examples_palette.dcm", "native-ybr-full", "rle-ybr-full"])
def test_wado_uri_rendered_has_the_objects_colours(client, name):
    payload = _payload(name)
    ds = _read(payload)
    store(client, payload)
    frame = frames_of(ds)[-1]
    expected = expected_rgb(ds, frame).astype(int)
    png = rendered_uri(client, ds, frame, "image/png")
    assert np.abs(png - expected).max() == 0, (name, png[0, 0], expected[0, 0])
    # JPEG is lossy: the reference goes through the same encoder (Pillow, quality 90) and back.
    jpeg = rendered_uri(client, ds, frame, "image/jpeg")
    buffer = io.BytesIO()
    Image.fromarray(expected.astype(np.uint8)).save(buffer, "JPEG", quality=90)
    expected_jpeg = np.asarray(Image.open(buffer)).astype(int)
    assert np.abs(jpeg - expected_jpeg).max() <= 1, (name, jpeg[0, 0], expected_jpeg[0, 0])


@pytest.mark.parametrize("name", ["native-ybr-full", "native-ybr-full-planar", "deflated-ybr-full",
                                  "ExplVR_BigEnd.dcm"])
def test_native_colour_frames_are_the_stored_values(client, name):
    """A native frame is its stored values (little endian), also when the object is parsed to find it
    (deflated, big endian): YBR is not made RGB, planar data stays planar. Rendering relies on it."""
    payload = _payload(name)
    ds = _read(payload)
    store(client, payload)
    path = (f"/api/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
            f"{ds.SOPInstanceUID}/frames/1")
    response = client.get(path, headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    assert response.status_code == 200, response.data
    body = response.get_data()
    boundary = body.split(b"\r\n", 1)[0]
    frame = body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n" + boundary, 1)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = decoded(ds, index=0, raw=True)             # (rows, columns, 3), as stored, no conversion
    if int(ds.PlanarConfiguration):
        values = values.transpose(2, 0, 1)
    assert frame == np.ascontiguousarray(values).astype(values.dtype.newbyteorder("<")).tobytes()
