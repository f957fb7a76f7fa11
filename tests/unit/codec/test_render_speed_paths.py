"""The shortcuts of the rendering path give the same answers as the long way round.

- the header Dataset holds only what rendering reads (group 0028, Pixel Presentation, the annotation text's
  attributes when asked for): every image renders byte for byte as with every attribute converted;
- app.codec.stored.dataset_from_json makes the same elements as pydicom's Dataset.from_json;
- a frame is read with one ranged read (also the fragments of an encapsulated frame);
- the per-value table (now with the MONOCHROME1 / INVERSE inversion in it) equals per-pixel arithmetic;
- WADO-URI parses the stored metadata once.
"""
from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from app.codec import presentation_state as ps
from app.codec import render, stored
from app.codec import transcode as tc
from app.index import retrieve
from tests.helpers import make_dataset, multipart, sample_bytes, stow_headers, to_bytes

SAMPLES = ["CT_small.dcm", "MR_small_bigendian.dcm", "examples_palette.dcm", "SC_rgb_small_odd.dcm",
           "SC_ybr_full_422_uncompressed.dcm", "rtdose.dcm", "SC_rgb_rle_16bit.dcm", "JPEG2000.dcm",
           "SC_rgb_jpeg_dcmtk.dcm",
           "liver_1frame.dcm"]


def _lut_item(descriptor, data) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = descriptor
    item.LUTData = data
    item["LUTData"].VR = "US"
    return item


def synthetic() -> dict[str, Dataset]:
    ramp = [int(v) for v in np.arange(4096) ** 1.3 % 65536]
    signed = make_dataset("speed", "s", "signed", rows=80, columns=90, seed=6, PixelRepresentation=1,
                          BitsStored=16, HighBit=15, WindowCenter=[40, 400], WindowWidth=[400, 1500])
    signed.PixelData = np.random.default_rng(6).integers(-2000, 3000, size=(80, 90)).astype("<i2").tobytes()
    return {
        "modality-lut": make_dataset("speed", "s", "mlut", rows=96, columns=80, seed=1,
                                     ModalityLUTSequence=Sequence([_lut_item([4096, 0, 16], ramp)])),
        "voi-lut": make_dataset("speed", "s", "vlut", rows=96, columns=80, seed=2, VOILUTSequence=Sequence(
            [_lut_item([4096, 0, 12], list(range(4095, -1, -1)))])),
        "monochrome1": make_dataset("speed", "s", "mono1", rows=128, columns=100, seed=3,
                                    PhotometricInterpretation="MONOCHROME1", RescaleSlope=2,
                                    RescaleIntercept=-1024, WindowCenter=40, WindowWidth=400),
        "sigmoid": make_dataset("speed", "s", "sigmoid", rows=100, columns=128, seed=4, WindowCenter=2000,
                                WindowWidth=1000, VOILUTFunction="SIGMOID", RescaleSlope=0.5,
                                RescaleIntercept=10),
        "latin1-multiframe": make_dataset("speed", "s", "mf", rows=70, columns=90, frames=3, seed=5,
                                          PatientName="Müller^Jörg", SpecificCharacterSet="ISO_IR 100",
                                          StudyDescription="CHEST", SeriesNumber=7, InstanceNumber=12),
        "signed": signed,
    }


OPTIONS = [
    {},
    {"window": render.Window(100.0, 500.0)},
    {"window": render.Window(0.0, 1.0, "linear-exact"), "media_type": "image/png"},
    {"annotations": ("patient", "technique"), "frame": 1, "media_type": "image/png"},
    {"annotations": ("technique",), "window": render.Window(40.0, 400.0)},
    {"viewport": render.Viewport(64, 64), "media_type": "image/gif"},
    {"presentation": ps.PresentationEffects(window=(600.0, 400.0, "linear"), rescale=(1.0, 100.0),
                                            inverse=True, rotation=90, flip=True), "media_type": "image/png"},
    {"presentation": ps.PresentationEffects(voi_lut=_lut_item([4096, 0, 8], [min(255, v // 8)
                                                                             for v in range(4096)])),
     "media_type": "image/png", "size": (40, None), "region": (0.1, 0.2, 0.8, 0.9)},
]


@pytest.fixture
def stored_rows(app):
    """Store the samples and synthetic objects; (label -> index row with metadata), storage."""
    services = app.extensions["dicomcloud"]
    client = app.test_client()
    objects = {name: pydicom.dcmread(io.BytesIO(sample_bytes(name)), stop_before_pixels=True)
               for name in SAMPLES}
    payloads = {name: sample_bytes(name) for name in SAMPLES}
    for label, ds in synthetic().items():
        objects[label], payloads[label] = ds, to_bytes(ds)
    rows = {}
    for label, ds in objects.items():
        response = client.post("/api/studies", data=multipart([payloads[label]]), headers=stow_headers())
        assert response.status_code == 200, (label, response.data)
        (row,) = retrieve.find_instances(services.engine, ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                         ds.SOPInstanceUID, with_metadata=True)
        rows[label] = row
    return rows, services.storage


def _first_frame(storage, row, metadata):
    info = stored.pixel_info(row, metadata)
    source = stored.FrameSource(storage, row, lambda: info, [1])
    return tc.frame_array(source.data(1), source.stored_ts, info)


def test_header_subset_renders_as_every_attribute(stored_rows):
    rows, storage = stored_rows
    compared = 0
    for label, row in rows.items():
        metadata = stored.metadata_of(row)
        arr = _first_frame(storage, row, metadata)
        complete = stored.header_dataset(storage, row, metadata, complete=True)
        for options in OPTIONS:
            options = dict(options)
            media_type = options.pop("media_type", "image/jpeg")
            header = stored.header_dataset(storage, row, metadata,
                                           annotations=bool(options.get("annotations")))
            try:
                expected = render.render_frame(arr, header=complete, media_type=media_type, **options)
            except render.RenderError as exc:
                with pytest.raises(render.RenderError, match=str(exc)):
                    render.render_frame(arr, header=header, media_type=media_type, **options)
                continue
            assert render.render_frame(arr, header=header, media_type=media_type, **options) == expected, \
                (label, options)
            compared += 1
    assert compared >= len(rows) * (len(OPTIONS) - 1)


def test_header_subset_holds_only_what_rendering_reads(stored_rows):
    rows, storage = stored_rows
    row = rows["latin1-multiframe"]
    metadata = stored.metadata_of(row)
    plain = stored.header_dataset(storage, row, metadata)
    assert "PatientName" not in plain and "SOPInstanceUID" not in plain and "PixelData" not in plain
    assert plain.Rows == 70 and plain.NumberOfFrames == 3 and plain.PhotometricInterpretation == "MONOCHROME2"
    annotated = stored.header_dataset(storage, row, metadata, annotations=True)
    assert str(annotated.PatientName) == "Müller^Jörg" and annotated.InstanceNumber == 12
    assert "SOPInstanceUID" not in annotated
    palette = stored.header_dataset(storage, rows["examples_palette.dcm"],
                                    stored.metadata_of(rows["examples_palette.dcm"]))
    original = pydicom.dcmread(io.BytesIO(sample_bytes("examples_palette.dcm")))
    # The palette's bulk data is read from the stored file at its recorded offset.
    assert palette.RedPaletteColorLookupTableData == original.RedPaletteColorLookupTableData


def _same_element(a, b, where: str) -> None:
    assert a.tag == b.tag and a.VR == b.VR, where
    if a.VR == "SQ":
        assert len(a.value) == len(b.value), where
        for index, (x, y) in enumerate(zip(a.value, b.value)):
            _same_dataset(x, y, f"{where}/{index}")
        return
    assert type(a.value) is type(b.value), (where, type(a.value), type(b.value))
    assert a.value == b.value, where
    if isinstance(a.value, MultiValue):
        assert [type(v) for v in a.value] == [type(v) for v in b.value], where


def _same_dataset(ours: Dataset, theirs: Dataset, where: str = "") -> None:
    assert list(ours.keys()) == list(theirs.keys()), where
    for tag in theirs.keys():
        _same_element(ours[tag], theirs[tag], f"{where}/{tag}")


EDGE_CASES = {
    "00080005": {"vr": "CS", "Value": ["ISO_IR 100", "ISO 2022 IR 87"]},
    "00080008": {"vr": "CS", "Value": ["ORIGINAL", None, "AXIAL"]},
    "00080020": {"vr": "DA"},
    "00080060": {"vr": "CS", "Value": []},
    "00081030": {"vr": "LO", "Value": [""]},
    "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}]},
    "00181063": {"vr": "DS", "Value": ["33.3"]},
    "00200011": {"vr": "IS", "Value": [7]},
    "00200013": {"vr": "IS", "Value": ["12"]},
    "00200032": {"vr": "DS", "Value": [-125.5, 10, 0.25]},
    "00209165": {"vr": "AT", "Value": ["00280010"]},
    "00280010": {"vr": "US", "Value": [512]},
    "00280034": {"vr": "IS", "Value": [1, 1]},
    "00281050": {"vr": "DS", "Value": [40.0, 400]},
    "00281052": {"vr": "DS", "Value": [-1024]},
    "00281101": {"vr": "US", "Value": [256, 0, 16]},
    "00283000": {"vr": "SQ", "Value": [{"00283002": {"vr": "US", "Value": [4096, 0, 12]},
                                        "00283006": {"vr": "US", "Value": [0, 1, 2]}}]},
    "00289110": {"vr": "SQ", "Value": []},
    "00186020": {"vr": "SL", "Value": [-3, 4]},
    "00189089": {"vr": "FD", "Value": [0.5, -1.25]},
    "00189327": {"vr": "FL", "Value": [2]},
    "00720064": {"vr": "SV", "Value": [-9007199254740993]},
    "00720068": {"vr": "UV", "Value": [18446744073709551615]},
    "00400254": {"vr": "LO", "Value": ["with\\backslash"]},
    "00091001": {"vr": "OB", "InlineBinary": "AAEC"},
    "00091002": {"vr": "OW", "BulkDataURI": "http://x/bulkdata/00091002"},
    "00091003": {"vr": "UN", "InlineBinary": "AAEC"},
    "00091004": {"vr": "UT", "Value": ["text"]},
    "00091005": {"vr": "UC", "Value": ["a", "b"]},
}


def test_fast_json_conversion_makes_pydicoms_elements(stored_rows):
    rows, _ = stored_rows

    def reader(tag, vr, uri):
        return b"\x01\x02"

    _same_dataset(stored.dataset_from_json(EDGE_CASES, reader), Dataset.from_json(EDGE_CASES, reader))
    for label, row in rows.items():
        metadata = stored.metadata_of(row)
        _same_dataset(stored.dataset_from_json(metadata, reader), Dataset.from_json(metadata, reader), label)


class CountingStorage:
    def __init__(self, storage):
        self.storage, self.calls = storage, []

    def iter_range(self, key, start=0, length=None, **kwargs):
        self.calls.append((start, length))
        return self.storage.iter_range(key, start, length, **kwargs)

    def read_range(self, key, start, length):
        self.calls.append((start, length))
        return self.storage.read_range(key, start, length)

    def __getattr__(self, name):
        return getattr(self.storage, name)


def test_a_native_frame_is_one_read(stored_rows):
    rows, storage = stored_rows
    row = rows["latin1-multiframe"]
    counting = CountingStorage(storage)
    source = stored.FrameSource(counting, row, lambda: None, [2])
    data = source.data(2)
    assert counting.calls == [(row.pixel_data_offset + 70 * 90 * 2, 70 * 90 * 2)]
    assert data == b"".join(source.chunks(2))


def test_an_encapsulated_frame_in_fragments_is_one_read_and_renders_the_same(app):
    """A JPEG frame split into three fragments: one read over the span, item headers left out; it renders
    as the same frame in one fragment does."""
    original = pydicom.dcmread(io.BytesIO(sample_bytes("SC_rgb_jpeg_dcmtk.dcm")))
    ds = pydicom.dcmread(io.BytesIO(sample_bytes("SC_rgb_jpeg_dcmtk.dcm")))
    (frame,) = generate_frames(ds.PixelData, number_of_frames=1)
    ds.PixelData = encapsulate([frame], fragments_per_frame=3)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    client = app.test_client()
    response = client.post("/api/studies", data=multipart([to_bytes(original), to_bytes(ds)]),
                           headers=stow_headers())
    assert response.status_code == 200
    services = app.extensions["dicomcloud"]
    (row,) = retrieve.find_instances(services.engine, ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                     ds.SOPInstanceUID, with_metadata=True)
    counting = CountingStorage(services.storage)
    source = stored.FrameSource(counting, row, lambda: None, [1])
    assert len(source.layout[0]) == 3
    data = source.data(1)
    assert len(counting.calls) == 1 and data.rstrip(b"\0") == frame.rstrip(b"\0")
    assert data == b"".join(source.chunks(1))
    series = f"/api/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    fragmented, whole = (client.get(f"{series}/instances/{uid}/rendered", headers={"Accept": "image/png"})
                         for uid in (ds.SOPInstanceUID, original.SOPInstanceUID))
    assert fragmented.status_code == whole.status_code == 200
    assert fragmented.data == whole.data


@pytest.mark.parametrize("photometric, inverse", [("MONOCHROME1", None), ("MONOCHROME2", True),
                                                  ("MONOCHROME1", False)])
def test_table_with_inversion_equals_per_pixel_arithmetic(photometric, inverse):
    arr = np.random.default_rng(3).integers(0, 4096, size=(128, 96)).astype(np.uint16)
    header = Dataset()
    header.RescaleSlope, header.RescaleIntercept = 1.5, -1024.0
    header.PhotometricInterpretation = photometric
    header.WindowCenter, header.WindowWidth = 300, 1200
    presentation = None if inverse is None else ps.PresentationEffects(inverse=inverse)
    fast = render._grayscale(arr, header, None, presentation)
    values = render._modality_values(arr, header, presentation)
    slow = render._apply_window(values, render.Window(300.0, 1200.0))
    inverted = inverse if inverse is not None else photometric == "MONOCHROME1"
    assert np.array_equal(fast, 255 - slow if inverted else slow)


def test_wado_uri_parses_the_stored_metadata_once(client, monkeypatch):
    ds = make_dataset("speed", "s", "once", rows=64, columns=64)
    response = client.post("/api/studies", data=multipart([to_bytes(ds)]), headers=stow_headers())
    assert response.status_code == 200
    calls = []
    original = stored.metadata_of

    def counted(row):
        calls.append(row.sop_instance_uid)
        return original(row)

    monkeypatch.setattr(stored, "metadata_of", counted)
    response = client.get(f"/api/wadouri?requestType=WADO&studyUID={ds.StudyInstanceUID}"
                          f"&seriesUID={ds.SeriesInstanceUID}&objectUID={ds.SOPInstanceUID}")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert calls == [ds.SOPInstanceUID]
