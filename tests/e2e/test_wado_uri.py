"""WADO-URI end to end through HTTP (the Flask test client over the real app on SQLite + a folder).

Every parameter of PS3.18 9 on real images stored by STOW-RS first: pixel checks on the rendered output
(a window changes pixels, rows/columns bound the size, region crops, annotation adds text, a presentation
state changes the result), the label matches the body, anonymize=yes really de-identifies.
"""
from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, JPEGLSLossless

from tests.helpers import make_dataset, multipart, sample_bytes, sample_path, stow_headers, to_bytes, uid

EVRLE = "1.2.840.10008.1.2.1"
GSPS_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"
PDF_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
VIDEO_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.1.1"       # Video Endoscopic Image Storage
H264 = "1.2.840.10008.1.2.4.102"
MPEG2 = "1.2.840.10008.1.2.4.100"
PNG = {"contentType": "image/png"}


# ---- helpers ----------------------------------------------------------------------------------------

def store(client, *datasets_or_bytes, status=200):
    payloads = [item if isinstance(item, bytes) else to_bytes(item) for item in datasets_or_bytes]
    response = client.post("/api/studies", data=multipart(payloads), headers=stow_headers())
    assert response.status_code == status, response.data
    return response


def stored_sample(client, name):
    store(client, sample_bytes(name))
    return pydicom.dcmread(sample_path(name))


def url(ds, prefix="/api/wadouri", **params):
    query = {"requestType": "WADO", "studyUID": ds.StudyInstanceUID, "seriesUID": ds.SeriesInstanceUID,
             "objectUID": ds.SOPInstanceUID}
    query.update(params)
    return prefix + "?" + urlencode(query)


def get(client, ds, headers=None, **params):
    return client.get(url(ds, **params), headers=headers or {})


def image(response) -> Image.Image:
    assert response.status_code == 200, response.data
    picture = Image.open(io.BytesIO(response.get_data()))
    assert response.headers["Content-Type"] == Image.MIME[picture.format]      # the label matches the body
    return picture


def pixels(response) -> np.ndarray:
    return np.asarray(image(response)).astype(int)


def error(response, status: int, *words: str) -> str:
    assert response.status_code == status, (response.status_code, response.data)
    message = response.get_json()["message"]
    for word in words:
        assert word in message, message
    return message


def mono(instance="1", values=None, rows=4, columns=4, **attributes):
    ds = make_dataset("URI-MONO", "s", instance, rows=rows, columns=columns, **attributes)
    if values is None:
        values = np.arange(rows * columns, dtype=np.uint16).reshape(rows, columns) * 100
    ds.PixelData = values.astype(np.uint16 if ds.PixelRepresentation == 0 else np.int16).tobytes()
    return ds


def linear(values, center, width):
    """PS3.3 C.11.2.1.2.1 to 0..255."""
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0, 1) * 255


# ---- routes, defaults and media types ---------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["/api/wadouri", "/wadouri"])
def test_default_is_a_jpeg_of_the_image(client, prefix):
    ds = stored_sample(client, "CT_small.dcm")
    response = client.get(url(ds, prefix=prefix))
    picture = image(response)
    assert picture.format == "JPEG" and response.headers["Content-Type"] == "image/jpeg"
    assert picture.size == (ds.Columns, ds.Rows)
    assert int(response.headers["Content-Length"]) == len(response.get_data())
    assert np.asarray(picture).std() > 5


@pytest.mark.parametrize("content_type,fmt", [("image/jpeg", "JPEG"), ("image/png", "PNG"), ("image/gif", "GIF"),
                                              ("image/*", "JPEG"), ("*/*", "JPEG"),
                                              ("image/jpeg;q=0.5, image/png", "PNG"),
                                              ("image/jp2, image/gif;q=0.1", "GIF")])
def test_content_types_and_q_values(client, content_type, fmt):
    ds = stored_sample(client, "CT_small.dcm")
    assert image(get(client, ds, contentType=content_type)).format == fmt


def test_content_type_that_cannot_be_met_is_406(client):
    ds = stored_sample(client, "CT_small.dcm")
    error(get(client, ds, contentType="image/jp2"), 406, "image/jpeg", "application/dicom")
    error(get(client, ds, contentType="text/html"), 406)
    error(get(client, ds, contentType="image/png;q=0"), 406)
    # The Accept header narrows what contentType may choose; without contentType it picks among the rest.
    error(get(client, ds, headers={"Accept": "image/png"}, contentType="image/jpeg"), 406, "Accept")
    assert image(get(client, ds, headers={"Accept": "image/png"})).format == "PNG"
    assert image(get(client, ds, headers={"Accept": "text/html,*/*;q=0.8"})).format == "JPEG"   # a browser


def test_parameter_names_match_case_insensitively_and_unknown_ones_are_ignored(client):
    ds = stored_sample(client, "CT_small.dcm")
    query = urlencode({"requesttype": "WADO", "STUDYUID": ds.StudyInstanceUID, "seriesuid": ds.SeriesInstanceUID,
                       "objectUid": ds.SOPInstanceUID, "contenttype": "image/png", "whatever": "1"})
    assert image(client.get("/wadouri?" + query)).format == "PNG"


# ---- application/dicom --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm",
                                  "SC_rgb_rle_2frame.dcm"])
def test_application_dicom_default_is_explicit_little_endian_pixel_exact(client, name):
    ds = stored_sample(client, name)
    response = get(client, ds, contentType="application/dicom")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/dicom"
    got = pydicom.dcmread(io.BytesIO(response.get_data()))
    lossy = name == "JPEG2000.dcm"                 # lossy data comes as stored, the rest decoded
    assert got.file_meta.TransferSyntaxUID == (ds.file_meta.TransferSyntaxUID if lossy else EVRLE)
    assert got.SOPInstanceUID == ds.SOPInstanceUID
    assert int(response.headers["Content-Length"]) == len(response.get_data())
    if not lossy:
        assert np.array_equal(got.pixel_array, ds.pixel_array)


def test_transfer_syntax_goes_through_the_codec_seam(client):
    ds = stored_sample(client, "CT_small.dcm")
    response = get(client, ds, contentType="application/dicom", transferSyntax=JPEGLSLossless)
    got = pydicom.dcmread(io.BytesIO(response.get_data()))
    assert got.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert np.array_equal(got.pixel_array, ds.pixel_array)
    # As stored: the very bytes.
    same = get(client, ds, contentType="application/dicom", transferSyntax=ds.file_meta.TransferSyntaxUID)
    assert same.get_data() == sample_bytes("CT_small.dcm")
    # transferSyntax alone implies application/dicom.
    assert get(client, ds, transferSyntax=EVRLE).headers["Content-Type"] == "application/dicom"
    error(get(client, ds, transferSyntax=JPEGBaseline8Bit), 406, "encoder")
    error(get(client, ds, transferSyntax="1.2.3.4"), 406, "1.2.3.4")
    error(get(client, ds, transferSyntax="not-a-uid"), 400, "transferSyntax")
    lossy = stored_sample(client, "SC_rgb_jpeg_dcmtk.dcm")
    kept = get(client, lossy, contentType="application/dicom")
    assert pydicom.dcmread(io.BytesIO(kept.get_data())).file_meta.TransferSyntaxUID == \
        lossy.file_meta.TransferSyntaxUID        # lossy data comes as stored by default


def test_anonymize_yes_really_deidentifies(make_app):
    app = make_app(**{"app:anonymizerOptions": "BasicProfile"})
    client = app.test_client()
    ds = make_dataset("URI-ANON", "s", "1", patient_name="Secret^Person", patient_id="MRN-4711",
                      InstitutionName="General Hospital")
    store(client, ds)
    response = get(client, ds, contentType="application/dicom", anonymize="yes")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/dicom"
    body = response.get_data()
    for secret in (b"Secret", b"MRN-4711", b"General Hospital", ds.SOPInstanceUID.encode()):
        assert secret not in body
    assert all(ds.SOPInstanceUID not in value for value in response.headers.values())
    got = pydicom.dcmread(io.BytesIO(body))
    assert got.PatientIdentityRemoved == "YES"
    assert got.SOPInstanceUID != ds.SOPInstanceUID and got.StudyInstanceUID != ds.StudyInstanceUID
    assert got.file_meta.MediaStorageSOPInstanceUID == got.SOPInstanceUID
    assert np.array_equal(got.pixel_array, ds.pixel_array)
    # anonymize alone implies application/dicom; with a transfer syntax both apply.
    both = get(client, ds, anonymize="yes", transferSyntax=JPEGLSLossless)
    got2 = pydicom.dcmread(io.BytesIO(both.get_data()))
    assert got2.file_meta.TransferSyntaxUID == JPEGLSLossless and got2.PatientIdentityRemoved == "YES"
    assert got2.SOPInstanceUID == got.SOPInstanceUID          # the same mapping every time
    assert np.array_equal(got2.pixel_array, ds.pixel_array)
    # The stored object is untouched.
    plain = pydicom.dcmread(io.BytesIO(get(client, ds, contentType="application/dicom").get_data()))
    assert str(plain.PatientName) == "Secret^Person"


def test_temp_files_are_removed_also_for_head_requests(app, client):
    ds = stored_sample(client, "CT_small.dcm")
    temp = app.extensions["dicomcloud"].temp_dir
    head = client.head(url(ds, transferSyntax=JPEGLSLossless))
    assert head.status_code == 200 and head.get_data() == b""
    head.close()                                    # as a WSGI server does after sending the headers
    assert get(client, ds, anonymize="yes").status_code == 200
    response = client.get(url(ds, anonymize="yes"), buffered=False)
    next(iter(response.response))                   # the client reads one chunk and goes away
    response.close()
    assert list(temp.iterdir()) == []


def test_anonymize_of_an_object_deidentified_on_store_keeps_its_uids(make_app):
    app = make_app(**{"app:enableAnonymizer": "true", "app:anonymizerOptions": "BasicProfile"})
    client = app.test_client()
    ds = make_dataset("URI-ANON2", "s", "1", patient_name="Secret^Person")
    store(client, ds, status=202)            # 202: attributes were changed (de-identified) on store
    mapped = app.extensions["dicomcloud"].deidentifier.map_uid
    stored = Dataset()
    stored.StudyInstanceUID, stored.SeriesInstanceUID, stored.SOPInstanceUID = (
        mapped(ds.StudyInstanceUID), mapped(ds.SeriesInstanceUID), mapped(ds.SOPInstanceUID))
    got = pydicom.dcmread(io.BytesIO(get(client, stored, anonymize="yes").get_data()))
    assert got.SOPInstanceUID == stored.SOPInstanceUID          # not mapped a second time
    assert "Secret" not in str(got.PatientName)


@pytest.mark.parametrize("params,words", [
    ({"anonymize": "yes", "contentType": "image/jpeg"}, ["anonymize", "application/dicom"]),
    ({"anonymize": "no"}, ["anonymize"]),
    ({"anonymize": "yes", "rows": "10"}, ["anonymize", "rows"]),
    ({"transferSyntax": EVRLE, "contentType": "image/png"}, ["transferSyntax"]),
    ({"contentType": "application/dicom", "rows": "10"}, ["rows", "application/dicom"]),
    ({"contentType": "application/dicom", "frameNumber": "1"}, ["frameNumber"]),
])
def test_contradictory_parameters_are_400(client, params, words):
    ds = stored_sample(client, "CT_small.dcm")
    error(get(client, ds, **params), 400, *words)


# ---- malformed and missing parameters -----------------------------------------------------------------

@pytest.mark.parametrize("params,word", [
    ({"rows": "0"}, "rows"), ({"rows": "abc"}, "rows"), ({"rows": "-5"}, "rows"), ({"columns": "1.5"}, "columns"),
    ({"rows": "100000"}, "rows"), ({"windowCenter": "40"}, "windowWidth"), ({"windowWidth": "400"}, "windowCenter"),
    ({"windowCenter": "x", "windowWidth": "400"}, "windowCenter"), ({"windowCenter": "40", "windowWidth": "0"},
                                                                     "windowWidth"),
    ({"windowCenter": "nan", "windowWidth": "400"}, "windowCenter"), ({"region": "0,0,1"}, "region"),
    ({"region": "0.5,0,0.2,1"}, "region"), ({"region": "0,0,1.5,1"}, "region"), ({"imageQuality": "0"}, "imageQuality"),
    ({"imageQuality": "101"}, "imageQuality"), ({"frameNumber": "0"}, "frameNumber"),
    ({"annotation": "everything"}, "annotation"), ({"presentationUID": "1.2.3"}, "presentationSeriesUID"),
    ({"presentationSeriesUID": "1.2.3"}, "presentationUID"),
    ({"presentationUID": "1.2.3", "presentationSeriesUID": "1.2.4", "windowCenter": "1", "windowWidth": "2"},
     "presentationUID"),
    ({"presentationUID": "x", "presentationSeriesUID": "1.2"}, "presentationUID"),
])
def test_malformed_parameters_are_400_naming_them(client, params, word):
    ds = stored_sample(client, "CT_small.dcm")
    error(get(client, ds, **params), 400, word)


def test_required_parameters(client):
    ds = stored_sample(client, "CT_small.dcm")
    full = {"requestType": "WADO", "studyUID": ds.StudyInstanceUID, "seriesUID": ds.SeriesInstanceUID,
            "objectUID": ds.SOPInstanceUID}
    for name in full:
        query = {k: v for k, v in full.items() if k != name}
        error(client.get("/api/wadouri?" + urlencode(query)), 400, name)
    error(client.get("/api/wadouri?" + urlencode(dict(full, requestType="WADO-RS"))), 400, "requestType")
    error(client.get("/api/wadouri?" + urlencode(dict(full, studyUID="1.02.x"))), 400, "studyUID")
    error(client.get("/api/wadouri?" + urlencode(dict(full, objectUID="1.2.3.4"))), 404, "1.2.3.4")
    error(client.get("/api/wadouri?" + urlencode(dict(full, seriesUID="1.2.3.4"))), 404)
    error(client.get("/api/wadouri?" + urlencode(dict(full, frameNumber="2"))), 400, "frame 2")


# ---- rendering parameters: pixel checks ------------------------------------------------------------------

def test_window_center_width_changes_pixels_exactly(client):
    ds = mono(RescaleSlope=2, RescaleIntercept=-100, WindowCenter=700, WindowWidth=1400)
    store(client, ds)
    modality = 2 * (np.arange(16).reshape(4, 4) * 100) - 100
    default = pixels(get(client, ds, **PNG))
    assert np.abs(default - linear(modality, 700, 1400)).max() <= 1        # the file's window, Modality LUT
    narrow = pixels(get(client, ds, windowCenter="1000", windowWidth="500", **PNG))
    assert np.abs(narrow - linear(modality, 1000, 500)).max() <= 1
    assert not np.array_equal(narrow, default)


def test_rows_and_columns_bound_the_size_keeping_the_aspect(client):
    ct = stored_sample(client, "CT_small.dcm")                   # 128 x 128
    assert image(get(client, ct, rows="64")).size == (64, 64)
    assert image(get(client, ct, columns="32")).size == (32, 32)
    assert image(get(client, ct, rows="100", columns="40")).size == (40, 40)
    wide = mono("wide", rows=16, columns=32, values=np.arange(512, dtype=np.uint16).reshape(16, 32))
    store(client, wide)
    assert image(get(client, wide, rows="8")).size == (16, 8)
    assert image(get(client, wide, columns="8")).size == (8, 4)
    assert image(get(client, wide, rows="100", columns="64")).size == (64, 32)


def test_region_crops(client):
    ct = stored_sample(client, "CT_small.dcm")
    full = pixels(get(client, ct, **PNG))
    quarter = pixels(get(client, ct, region="0,0,0.5,0.5", **PNG))
    assert quarter.shape == (64, 64)
    assert np.array_equal(quarter, full[:64, :64])
    strip = pixels(get(client, ct, region="0.25,0.5,1,0.75", **PNG))
    assert np.array_equal(strip, full[64:96, 32:])
    scaled = image(get(client, ct, region="0,0,0.5,0.5", rows="32"))
    assert scaled.size == (32, 32)


def test_annotation_adds_text_pixels(client):
    ct = stored_sample(client, "CT_small.dcm")
    plain = pixels(get(client, ct, **PNG))
    for value in ("patient", "technique", "patient,technique"):
        annotated = pixels(get(client, ct, annotation=value, **PNG))
        assert annotated.shape[:2] == plain.shape[:2]
        changed = annotated[..., 0] != plain if annotated.ndim == 3 else annotated != plain
        assert changed[:30].sum() > 20 and changed[40:].sum() == 0       # text at the top only


def test_image_quality(client):
    ct = stored_sample(client, "CT_small.dcm")
    low, high = get(client, ct, imageQuality="5"), get(client, ct, imageQuality="100")
    assert image(low).format == image(high).format == "JPEG"
    assert len(low.get_data()) < len(high.get_data()) / 2


def test_frame_number_of_multi_frame(client):
    ds = stored_sample(client, "SC_rgb_rle_2frame.dcm")
    assert np.array_equal(pixels(get(client, ds, frameNumber="2", **PNG)), ds.pixel_array[1])
    assert np.array_equal(pixels(get(client, ds, **PNG)), ds.pixel_array[0])
    error(get(client, ds, frameNumber="3"), 400, "frame 3")
    # image/gif without frameNumber: every frame, animated; with frameNumber one frame.
    animated = image(get(client, ds, contentType="image/gif"))
    assert animated.format == "GIF" and animated.n_frames == 2 and animated.info.get("loop") == 0
    first = np.asarray(animated.convert("RGB")).astype(int)
    animated.seek(1)
    second = np.asarray(animated.convert("RGB")).astype(int)
    assert not np.array_equal(first, second)
    assert image(get(client, ds, contentType="image/gif", frameNumber="2")).n_frames == 1
    dose = stored_sample(client, "rtdose.dcm")
    assert not np.array_equal(pixels(get(client, dose, frameNumber="1", **PNG)),
                              pixels(get(client, dose, frameNumber="10", **PNG)))


def test_photometric_interpretations_and_signed_pixels(client):
    # MONOCHROME1 is inverted.
    m1 = mono("m1", PhotometricInterpretation="MONOCHROME1")
    m2 = mono("m2")
    store(client, m1, m2)
    assert np.array_equal(pixels(get(client, m1, **PNG)), 255 - pixels(get(client, m2, **PNG)))
    # RGB and YBR_FULL_422 come out as RGB.
    rgb = stored_sample(client, "SC_rgb_rle_2frame.dcm")
    assert pixels(get(client, rgb, **PNG)).shape == (rgb.Rows, rgb.Columns, 3)
    ybr = stored_sample(client, "SC_ybr_full_422_uncompressed.dcm")
    expected = ybr.pixel_array.astype(int)              # pydicom 3 converts YBR_FULL_422 to RGB itself
    assert np.abs(pixels(get(client, ybr, **PNG)) - expected).max() <= 1
    # PALETTE COLOR through its LUTs.
    pal = mono("pal", PhotometricInterpretation="PALETTE COLOR", BitsAllocated=8, BitsStored=8, HighBit=7)
    pal.PixelData = np.arange(16, dtype=np.uint8).reshape(4, 4).tobytes()
    ramp = np.arange(256, dtype=np.uint16)
    for color in ("Red", "Green", "Blue"):
        setattr(pal, f"{color}PaletteColorLookupTableDescriptor", [256, 0, 16])
    pal.RedPaletteColorLookupTableData = (ramp * 256).tobytes()
    pal.GreenPaletteColorLookupTableData = np.zeros(256, np.uint16).tobytes()
    pal.BluePaletteColorLookupTableData = ((255 - ramp) * 256).tobytes()
    store(client, pal)
    shown = pixels(get(client, pal, **PNG))
    assert np.abs(shown[..., 0] - np.arange(16).reshape(4, 4)).max() <= 1 and shown[..., 1].max() == 0
    # Signed pixels: the order of values is kept (no wrap-around of negatives).
    values = (np.arange(16).reshape(4, 4) - 8) * 100
    signed = mono("signed", PixelRepresentation=1, values=values)
    store(client, signed)
    shown = pixels(get(client, signed, **PNG))
    assert shown[0, 0] == 0 and shown[3, 3] == 255 and np.all(np.diff(shown.ravel()) >= 0)
    centered = pixels(get(client, signed, windowCenter="0", windowWidth="200", **PNG))
    assert np.abs(centered - linear(values, 0, 200)).max() <= 1


def test_voi_lut_of_the_file_is_used_without_a_window(client):
    ds = mono("voi", values=np.arange(16, dtype=np.uint16).reshape(4, 4))
    item = Dataset()
    item.LUTDescriptor = [16, 0, 8]
    item.LUTData = [0] * 8 + [255] * 8                   # a step at 8
    item["LUTData"].VR = "US"
    ds.VOILUTSequence = [item]
    store(client, ds)
    shown = pixels(get(client, ds, **PNG))
    assert shown.ravel()[:8].max() == 0 and shown.ravel()[8:].min() == 255


# ---- presentation states --------------------------------------------------------------------------------

def gsps(target, label="ps", **attributes):
    ds = Dataset()
    ds.SOPClassUID = GSPS_CLASS
    ds.SOPInstanceUID = uid("gsps", label)
    ds.StudyInstanceUID = target.StudyInstanceUID
    ds.SeriesInstanceUID = uid("gsps-series", label)
    ds.Modality = "PR"
    ds.PatientName, ds.PatientID = target.PatientName, target.PatientID
    ds.ContentLabel = "TEST"
    ds.PresentationLUTShape = "IDENTITY"
    reference = Dataset()
    reference.ReferencedSOPClassUID = target.SOPClassUID
    reference.ReferencedSOPInstanceUID = target.SOPInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = target.SeriesInstanceUID
    series.ReferencedImageSequence = [reference]
    ds.ReferencedSeriesSequence = [series]
    for key, value in attributes.items():
        setattr(ds, key, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = GSPS_CLASS
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def voi(center, width):
    item = Dataset()
    item.WindowCenter, item.WindowWidth = center, width
    return item


def area(tlhc, brhc):
    item = Dataset()
    item.DisplayedAreaTopLeftHandCorner, item.DisplayedAreaBottomRightHandCorner = tlhc, brhc
    item.PresentationSizeMode = "SCALE TO FIT"
    return item


def with_ps(state):
    return {"presentationUID": state.SOPInstanceUID, "presentationSeriesUID": state.SeriesInstanceUID}


def test_presentation_state_window_flip_rotation_and_displayed_area(client):
    values = np.arange(24, dtype=np.uint16).reshape(4, 6) * 100          # 4 rows x 6 columns
    image_ds = mono("gsps-target", values=values, rows=4, columns=6, WindowCenter=1150, WindowWidth=2300)
    window_only = gsps(image_ds, "w", SoftcopyVOILUTSequence=[voi(600, 400)])
    flipped = gsps(image_ds, "f", ImageHorizontalFlip="Y")
    rotated = gsps(image_ds, "r", ImageRotation=90)
    cropped = gsps(image_ds, "a", DisplayedAreaSelectionSequence=[area([2, 1], [4, 2])])
    inverse = gsps(image_ds, "i", PresentationLUTShape="INVERSE", SoftcopyVOILUTSequence=[voi(600, 400)],
                   RescaleSlope=1, RescaleIntercept=100)
    store(client, image_ds, window_only, flipped, rotated, cropped, inverse)

    plain = pixels(get(client, image_ds, **PNG))
    assert np.abs(plain - linear(values, 1150, 2300)).max() <= 1
    windowed = pixels(get(client, image_ds, **with_ps(window_only), **PNG))
    assert np.abs(windowed - linear(values, 600, 400)).max() <= 1
    assert not np.array_equal(windowed, plain)                           # a GSPS changes the result
    assert np.array_equal(pixels(get(client, image_ds, **with_ps(flipped), **PNG)), plain[:, ::-1])
    turned = pixels(get(client, image_ds, **with_ps(rotated), **PNG))
    assert turned.shape == (6, 4) and np.array_equal(turned, np.rot90(plain, -1))     # 90 degrees clockwise
    assert np.array_equal(pixels(get(client, image_ds, **with_ps(cropped), **PNG)), plain[0:2, 1:4])
    shown = pixels(get(client, image_ds, **with_ps(inverse), **PNG))
    assert np.abs(shown - (255 - linear(values + 100, 600, 400))).max() <= 1
    # With other rendering parameters: the presentation applies first, then size.
    assert image(get(client, image_ds, rows="12", **with_ps(rotated))).size == (8, 12)
    assert image(get(client, image_ds, columns="12", **with_ps(flipped))).size == (12, 8)


def test_presentation_state_in_another_study(client):
    target = mono("elsewhere", WindowCenter=750, WindowWidth=1500)
    state = gsps(target, "elsewhere", SoftcopyVOILUTSequence=[voi(100, 50)])
    state.StudyInstanceUID = uid("another study")
    store(client, target, state)
    values = np.arange(16).reshape(4, 4) * 100
    assert np.abs(pixels(get(client, target, **with_ps(state), **PNG)) - linear(values, 100, 50)).max() <= 1


def test_presentation_state_errors(client):
    ct = stored_sample(client, "CT_small.dcm")
    other = mono("not-referenced")
    state = gsps(other, "other")
    store(client, other, state)
    error(get(client, ct, **with_ps(state)), 400, "does not reference")
    error(get(client, ct, presentationUID="1.2.3", presentationSeriesUID="1.2.4"), 404, "presentation state")
    error(get(client, ct, presentationUID=other.SOPInstanceUID, presentationSeriesUID=other.SeriesInstanceUID),
          400, "Grayscale Softcopy Presentation State")


# ---- non-image objects ------------------------------------------------------------------------------------

def test_structured_report_as_html_text_and_xml(client):
    sr = stored_sample(client, "test-SR.dcm")
    html = get(client, sr)
    assert html.status_code == 200 and html.headers["Content-Type"] == "text/html; charset=utf-8"
    text = html.get_data().decode("utf-8")
    assert "<h1>Diagnosis</h1>" in text and "A mass of" in text and "3 cm" in text
    assert "&lt;&gt;" in text and "<>{}" not in text                      # values are escaped
    plain = get(client, sr, contentType="text/plain", charset="iso-8859-1")
    assert plain.headers["Content-Type"] == "text/plain; charset=iso-8859-1"
    body = plain.get_data().decode("iso-8859-1")
    assert body.startswith("Diagnosis\n") and "[CONTAINS] Diameter: 3 cm" in body and "§" in body
    error(get(client, sr, contentType="text/plain", charset="us-ascii"), 406, "charset")
    fallback = get(client, sr, contentType="text/plain", charset="us-ascii, utf-8;q=0.5")
    assert fallback.headers["Content-Type"] == "text/plain; charset=utf-8"
    ascii_html = get(client, sr, charset="us-ascii")
    assert ascii_html.headers["Content-Type"] == "text/html; charset=us-ascii"
    assert '<meta charset="us-ascii">' in ascii_html.get_data().decode("ascii")
    assert "&#167;" in ascii_html.get_data().decode("ascii")             # § as a character reference
    xml = get(client, sr, contentType="text/xml")
    assert xml.headers["Content-Type"] == "text/xml; charset=utf-8"
    root = ET.fromstring(xml.get_data())
    assert root.tag.endswith("NativeDicomModel")
    assert get(client, sr, contentType="application/dicom").get_data()[128:132] == b"DICM"
    error(get(client, sr, contentType="image/jpeg"), 406, "text/html")
    error(get(client, sr, rows="10"), 400, "rows", "structured report")


def _pdf_object(payload: bytes) -> Dataset:
    ds = make_dataset("URI-PDF", "s", "1", sop_class=PDF_CLASS, modality="DOC")
    for keyword in ("SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated",
                    "BitsStored", "HighBit", "PixelRepresentation", "PixelData"):
        delattr(ds, keyword)
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.DocumentTitle = "Report"
    ds.BurnedInAnnotation = "YES"
    ds.EncapsulatedDocument = payload + (b"\x00" if len(payload) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(payload)
    ds.file_meta.MediaStorageSOPClassUID = PDF_CLASS
    return ds


def test_encapsulated_pdf(client):
    payload = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF"
    ds = _pdf_object(payload)
    store(client, ds)
    response = get(client, ds)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/pdf"
    assert response.get_data() == payload
    assert get(client, ds, contentType="application/pdf").get_data() == payload
    got = pydicom.dcmread(io.BytesIO(get(client, ds, contentType="application/dicom").get_data()))
    assert got.EncapsulatedDocument.startswith(payload)
    error(get(client, ds, contentType="image/jpeg"), 406, "application/pdf")


def _video(syntax: str, stream: bytes) -> Dataset:
    ds = make_dataset("URI-VIDEO", "s", syntax, sop_class=VIDEO_CLASS, modality="ES", rows=16, columns=16,
                      frames=3)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 3, "YBR_PARTIAL_420"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PlanarConfiguration = 8, 8, 7, 0
    ds.FrameTime = 40
    ds.PixelData = encapsulate([stream[:10], stream[10:]], has_bot=True)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = syntax
    return ds


@pytest.mark.parametrize("syntax,media_type", [(H264, "video/mp4"), (MPEG2, "video/mpeg")])
def test_video_stream(client, syntax, media_type):
    stream = bytes(range(256)) * 4
    ds = _video(syntax, stream)
    store(client, ds)
    response = get(client, ds)
    assert response.status_code == 200 and response.headers["Content-Type"] == media_type
    assert response.get_data() == stream
    assert get(client, ds, contentType=media_type).get_data() == stream
    as_stored = pydicom.dcmread(io.BytesIO(get(client, ds, contentType="application/dicom").get_data()))
    assert as_stored.file_meta.TransferSyntaxUID == syntax
    error(get(client, ds, contentType="image/jpeg"), 406, media_type)


def test_other_non_image_objects_are_application_dicom(client):
    plan = stored_sample(client, "rtplan.dcm")
    response = get(client, plan)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/dicom"
    assert pydicom.dcmread(io.BytesIO(response.get_data())).SOPInstanceUID == plan.SOPInstanceUID
    error(get(client, plan, contentType="image/jpeg"), 406, "application/dicom")
    error(get(client, plan, windowCenter="1", windowWidth="2"), 400, "windowCenter")


def test_openapi_documents_every_parameter(client):
    spec = client.get("/openapi.json").get_json()
    for path in ("/api/wadouri", "/wadouri"):
        names = {p["name"] for p in spec["paths"][path]["get"]["parameters"]}
        assert {"requestType", "studyUID", "seriesUID", "objectUID", "contentType", "charset", "anonymize",
                "annotation", "rows", "columns", "region", "windowCenter", "windowWidth", "frameNumber",
                "imageQuality", "presentationUID", "presentationSeriesUID", "transferSyntax"} <= names


def test_nothing_is_500_for_odd_input(client):
    ct = stored_sample(client, "CT_small.dcm")
    odd = [{"contentType": ";;;"}, {"contentType": "image/png;q=abc"}, {"charset": ";q=0"},
           {"rows": "9" * 40}, {"region": "nan,0,1,1"}, {"windowCenter": "1e999", "windowWidth": "1"},
           {"contentType": "application/dicom", "transferSyntax": "*"}, {"frameNumber": "9" * 30}]
    for params in odd:
        response = get(client, ct, **params)
        assert response.status_code < 500, (params, response.data)
    assert re.match(r"^\d{3}$", str(get(client, ct, contentType="text/plain").status_code))
