"""inspect_file: index record, metadata with BulkDataURIs, and the byte layout of frames and bulk data."""
from __future__ import annotations

import json

import pytest
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.uid import JPEGBaseline8Bit, RLELossless

from app.codec.instance import BULK_BASE_TOKEN, InvalidInstance, add_missing_preamble, inspect_file
from tests.helpers import make_dataset, to_bytes


def _frames(count: int, marker: bytes = b"\xff\xd8") -> list[bytes]:
    # Fake codestreams: only the layout is under test, so the bytes need only start like a frame.
    return [marker + bytes([n]) * (300 + 37 * n) + b"\xff\xd9" for n in range(count)]


def _write(tmp_path, ds, name="x.dcm"):
    path = tmp_path / name
    path.write_bytes(to_bytes(ds))
    return path


def _read_frames(path, layout):
    data = path.read_bytes()
    return [b"".join(data[o:o + n] for o, n in frame) for frame in layout["frames"]]


@pytest.mark.parametrize("fragments_per_frame, has_bot", [(1, False), (1, True), (3, True), (3, False)])
def test_encapsulated_frames_are_located(tmp_path, fragments_per_frame, has_bot):
    frames = _frames(5)
    ds = make_dataset("E", "s", "1", frames=5)
    ds.PixelData = encapsulate(frames, fragments_per_frame=fragments_per_frame, has_bot=has_bot)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    path = _write(tmp_path, ds)
    inspected = inspect_file(str(path))
    padded = [frame + b"\x00" * (len(frame) % 2) for frame in frames]     # items have even length
    assert _read_frames(path, inspected.layout) == padded
    assert all(len(frame) == fragments_per_frame for frame in inspected.layout["frames"])


def test_extended_offset_table_is_used(tmp_path):
    frames = [bytes([n]) * (100 + n) for n in range(4)]     # no markers: only the table can tell
    ds = make_dataset("E", "s", "2", frames=4)
    ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended(frames)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = RLELossless
    path = _write(tmp_path, ds)
    assert _read_frames(path, inspect_file(str(path)).layout) == [f + b"\x00" * (len(f) % 2) for f in frames]


def test_native_frames_and_bulk_offsets(tmp_path):
    ds = make_dataset("N", "s", "1", rows=8, columns=4, frames=3)
    path = _write(tmp_path, ds)
    inspected = inspect_file(str(path))
    frame_size = 8 * 4 * 2
    assert _read_frames(path, inspected.layout) == [ds.PixelData[i * frame_size:(i + 1) * frame_size]
                                                    for i in range(3)]
    offset, length = inspected.layout["bulk"]["7FE00010"]
    assert path.read_bytes()[offset:offset + length] == ds.PixelData
    assert (inspected.instance["pixel_data_offset"], inspected.instance["pixel_data_length"]) == (offset, length)


def test_metadata_replaces_large_binary_values_with_bulk_data_uris(tmp_path):
    ds = make_dataset("M", "s", "1")
    ds.add_new(0x00291010, "OB", b"\x01" * 5000)          # a large private binary value
    ds.add_new(0x00291011, "OB", b"\x02" * 10)            # a small one stays inline
    path = _write(tmp_path, ds)
    inspected = inspect_file(str(path))
    metadata = json.loads(inspected.metadata_json)
    base = f"{BULK_BASE_TOKEN}studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/" \
           f"{ds.SOPInstanceUID}/bulkdata/"
    assert metadata["7FE00010"] == {"vr": "OW", "BulkDataURI": base + "7FE00010"}
    assert metadata["00291010"] == {"vr": "OB", "BulkDataURI": base + "00291010"}
    assert "InlineBinary" in metadata["00291011"]
    offset, length = inspected.layout["bulk"]["00291010"]
    assert path.read_bytes()[offset:offset + length] == b"\x01" * 5000
    assert metadata["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}]}


def test_bulk_data_inside_a_sequence_gets_a_path(tmp_path):
    from pydicom.dataset import Dataset
    ds = make_dataset("Q", "s", "1")
    icon = Dataset()
    icon.Rows = icon.Columns = 64
    icon.PixelData = b"\x07" * 4096
    icon["PixelData"].VR = "OB"
    ds.IconImageSequence = [icon]
    path = _write(tmp_path, ds)
    inspected = inspect_file(str(path))
    metadata = json.loads(inspected.metadata_json)
    item = metadata["00880200"]["Value"][0]
    assert item["7FE00010"]["BulkDataURI"].endswith("/bulkdata/00880200/0/7FE00010")
    offset, length = inspected.layout["bulk"]["00880200/0/7FE00010"]
    assert path.read_bytes()[offset:offset + length] == b"\x07" * 4096


def test_index_values_are_normalised(tmp_path):
    ds = make_dataset("V", "s", "1", patient_name="Ñúñez^José", study_date="20240229",
                      StudyTime="0815", SeriesNumber="7", InstanceNumber=None)
    inspected = inspect_file(str(_write(tmp_path, ds)))
    assert inspected.patient["patient_name_match"] == "NUNEZ^JOSE"
    assert inspected.study["study_time"] == "081500.000000"
    assert inspected.study["study_datetime"] == "20240229081500.000000"
    assert inspected.series["series_number"] == 7
    assert inspected.instance["instance_number"] is None


@pytest.mark.parametrize("change, reason, text", [
    (lambda ds: delattr(ds, "StudyInstanceUID"), 0xA900, "StudyInstanceUID"),
    (lambda ds: setattr(ds, "SeriesInstanceUID", "1.2.3.04"), 0xA900, "SeriesInstanceUID"),
    (lambda ds: setattr(ds, "SOPClassUID", ""), 0xA900, "SOPClassUID"),
])
def test_identifying_attributes_are_required(tmp_path, change, reason, text):
    ds = make_dataset("I", "s", "1")
    change(ds)
    with pytest.raises(InvalidInstance) as failure:
        inspect_file(str(_write(tmp_path, ds)))
    assert failure.value.reason == reason and text in failure.value.message
    assert failure.value.sop_instance_uid == ds.SOPInstanceUID


def test_not_dicom_and_truncated(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"GIF89a" + b"\x00" * 300)
    with pytest.raises(InvalidInstance) as failure:
        inspect_file(str(junk))
    assert failure.value.reason == 0xC000
    whole = to_bytes(make_dataset("T", "s", "1", rows=64, columns=64))
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(whole[:-100])                   # cut inside Pixel Data
    with pytest.raises(InvalidInstance) as failure:
        inspect_file(str(truncated))
    assert failure.value.reason == 0xC000 and "truncated" in failure.value.message


def test_missing_preamble_is_added_and_data_set_bytes_kept(tmp_path):
    whole = to_bytes(make_dataset("P", "s", "1"))
    bare = tmp_path / "bare.dcm"
    bare.write_bytes(whole[132:])
    assert add_missing_preamble(str(bare)) is True
    assert bare.read_bytes() == b"\x00" * 128 + b"DICM" + whole[132:]
    assert add_missing_preamble(str(bare)) is False
    other = tmp_path / "other"
    other.write_bytes(b"not dicom")
    assert add_missing_preamble(str(other)) is False and other.read_bytes() == b"not dicom"
