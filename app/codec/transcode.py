"""The transcoding seam: stored file or frame -> another transfer syntax, with pydicom's codec plugins.

Every compressed syntax pydicom has a decoder plugin for is decoded; encoding is offered for the native
little endian syntaxes (Explicit, Implicit, Deflated) and the lossless encoders pydicom ships (RLE Lossless,
JPEG-LS Lossless via pyjpegls, JPEG 2000 Lossless via pylibjpeg-openjpeg). Lossy data is never relabelled
as a lossless syntax. ``transcode_reason`` says why a conversion cannot be done (the text of a 406), so
callers find out before they start streaming.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import get_decoder, get_encoder, pixel_array
from pydicom.uid import UID

from app.dicomweb import negotiation as n

log = logging.getLogger(__name__)

NATIVE_LITTLE_ENDIAN = (n.EXPLICIT_LE, n.IMPLICIT_LE, n.DEFLATED_LE)
# Compressed syntaxes we encode to (the pixels decode exactly to the original ones).
ENCODABLE = (n.RLE_LOSSLESS, n.JPEG_LS_LOSSLESS, n.JPEG_2000_LOSSLESS)
_SWAP_SIZES = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}


class TranscodeError(Exception):
    """The conversion failed although it was expected to work (the pixel data is not what it claims)."""


def _name(uid: str) -> str:
    try:
        name = UID(uid).name
    except Exception:
        name = uid
    return f"{name} ({uid})" if name != uid else uid


def decoder_reason(transfer_syntax: str) -> str | None:
    """None when pixel data in ``transfer_syntax`` can be decoded here; else why not."""
    if transfer_syntax in n.NATIVE:
        return None
    try:
        decoder = get_decoder(transfer_syntax)
    except NotImplementedError:
        return f"no decoder exists for {_name(transfer_syntax)}"
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        return f"cannot decode {_name(transfer_syntax)}: codec plugin missing ({missing or 'none installed'})"
    return None


def encoder_reason(transfer_syntax: str) -> str | None:
    """None when pixel data can be encoded in ``transfer_syntax`` here; else why not."""
    if transfer_syntax in NATIVE_LITTLE_ENDIAN:
        return None
    if transfer_syntax == n.EXPLICIT_BE:
        return "Explicit VR Big Endian (retired) is not produced by this server"
    if transfer_syntax not in ENCODABLE:
        return f"no encoder is offered for {_name(transfer_syntax)}"
    try:
        encoder = get_encoder(transfer_syntax)
    except NotImplementedError:
        return f"no encoder exists for {_name(transfer_syntax)}"
    if not encoder.is_available:
        return (f"cannot encode {_name(transfer_syntax)}: codec plugin missing ("
                + "; ".join(encoder.missing_dependencies) + ")")
    return None


@dataclass(frozen=True)
class PixelInfo:
    """What a codec needs to know about the pixel data (taken from the stored metadata)."""
    rows: int
    columns: int
    samples_per_pixel: int = 1
    bits_allocated: int = 16
    bits_stored: int = 16
    pixel_representation: int = 0
    photometric_interpretation: str = "MONOCHROME2"
    planar_configuration: int = 0
    number_of_frames: int = 1

    def codec_options(self, frames: int = 1) -> dict:
        return {"rows": self.rows, "columns": self.columns, "samples_per_pixel": self.samples_per_pixel,
                "bits_allocated": self.bits_allocated, "bits_stored": self.bits_stored,
                "pixel_representation": self.pixel_representation,
                "photometric_interpretation": self.photometric_interpretation,
                "planar_configuration": self.planar_configuration, "number_of_frames": frames}

    @property
    def frame_size(self) -> int:
        return self.rows * self.columns * self.samples_per_pixel * self.bits_allocated // 8


def encoding_limits_reason(info: PixelInfo | None, target: str) -> str | None:
    """Encoders take only some pixel formats (e.g. JPEG-LS and RLE not 32-bit, JPEG 2000 up to 24 bits)."""
    if info is None or target in n.NATIVE:
        return None
    most = 24 if target == n.JPEG_2000_LOSSLESS else 16
    if info.bits_allocated not in (8, 16) or info.bits_stored > most:
        return (f"{_name(target)} cannot hold {info.bits_allocated}-bit pixel data "
                f"(BitsStored {info.bits_stored}); ask for Explicit VR Little Endian")
    if info.samples_per_pixel not in (1, 3):
        return f"{_name(target)} cannot hold {info.samples_per_pixel} samples per pixel"
    return None


def transcode_reason(source: str, target: str, *, has_pixels: bool = True,
                     info: PixelInfo | None = None) -> str | None:
    """None when ``source`` data can be served as ``target``; else the reason (for a 406)."""
    if source == target:
        return None
    if not has_pixels:
        if target in n.NATIVE and target != n.EXPLICIT_BE:
            return None
        return f"the object has no pixel data to encode as {_name(target)}"
    if source in n.LOSSY and target not in n.NATIVE:
        return (f"the stored pixel data is lossy ({_name(source)}); it is not re-encoded as "
                f"{_name(target)}: ask for transfer-syntax=* or {n.EXPLICIT_LE}")
    return decoder_reason(source) or encoder_reason(target) or encoding_limits_reason(info, target)


# ---- whole objects -----------------------------------------------------------------------------------

def _swap_to_little_endian(ds: pydicom.Dataset) -> None:
    """Byte-swap the raw binary values of a dataset read from a big endian file."""
    for element in ds.iterall():
        size = _SWAP_SIZES.get(element.VR)
        if size and isinstance(element.value, (bytes, bytearray)) and len(element.value) % size == 0:
            element.value = np.frombuffer(element.value, dtype=f">u{size}").astype(f"<u{size}").tobytes()


def transcode_file(source: BinaryIO, target: str, temp_dir: str) -> str:
    """Write the Part-10 object read from ``source`` in ``target`` syntax to a new temp file; return its path.

    The caller deletes the file. Raises TranscodeError when the pixel data cannot be converted.
    """
    try:
        ds = pydicom.dcmread(source)
        stored = str(ds.file_meta.TransferSyntaxUID)
        for _ in ds.iterall():      # convert every raw element (and find its VR: files lie about explicit VR)
            pass
        if stored == n.EXPLICIT_BE:
            _swap_to_little_endian(ds)
        has_pixels = "PixelData" in ds
        if has_pixels and UID(stored).is_compressed:
            ds.decompress(generate_instance_uid=False)
            if stored in n.LOSSY:
                ds.LossyImageCompression = "01"
        if has_pixels and UID(target).is_compressed:
            ds.compress(target, generate_instance_uid=False)
        ds.file_meta.TransferSyntaxUID = target
        fd, path = tempfile.mkstemp(prefix="transcoded-", suffix=".dcm", dir=temp_dir)
        with os.fdopen(fd, "wb") as out:
            pydicom.dcmwrite(out, ds, implicit_vr=target == n.IMPLICIT_LE, little_endian=True,
                             force_encoding=True)
        return path
    except TranscodeError:
        raise
    except Exception as exc:
        raise TranscodeError(f"cannot convert the object to {_name(target)}: {type(exc).__name__}: {exc}") \
            from exc


# ---- single frames -----------------------------------------------------------------------------------

def frame_array(data: bytes, source: str, info: PixelInfo) -> np.ndarray:
    """Decode one frame's bytes (native frame bytes or the concatenated fragments of one encapsulated
    frame) to an array (rows, columns[, samples]); the colour space is ``decode_frame``'s."""
    return decode_frame(data, source, info)[0]


def decode_frame(data: bytes, source: str, info: PixelInfo) -> tuple[np.ndarray, str]:
    """``frame_array`` and the Photometric Interpretation of the array it returns.

    Native frames are the stored values: their colour space is the object's (YBR stays YBR). Compressed
    frames are what pydicom's decoder hands back, and it says which: YBR_FULL / YBR_FULL_422 become RGB
    (pydicom converts them, whichever plugin decoded), JPEG 2000's YBR_ICT / YBR_RCT become RGB (the
    JPEG 2000 decoder undoes its component transform), everything else keeps the stored value.
    """
    try:
        if source in n.NATIVE:
            count = info.rows * info.columns * info.samples_per_pixel
            if info.bits_allocated == 1:          # packed bits, first pixel in the lowest bit
                bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")[:count]
                return bits.reshape((info.rows, info.columns) if info.samples_per_pixel == 1
                                    else (info.rows, info.columns, info.samples_per_pixel)), \
                    info.photometric_interpretation
            if info.bits_allocated not in (8, 16, 32, 64):
                raise TranscodeError(f"{info.bits_allocated}-bit native frames cannot be decoded")
            kind = "i" if info.pixel_representation else "u"
            order = ">" if source == n.EXPLICIT_BE else "<"
            arr = np.frombuffer(data, dtype=f"{order}{kind}{info.bits_allocated // 8}")
            arr = arr[:count]
            if info.samples_per_pixel > 1:
                if info.planar_configuration:
                    arr = arr.reshape(info.samples_per_pixel, info.rows, info.columns).transpose(1, 2, 0)
                else:
                    arr = arr.reshape(info.rows, info.columns, info.samples_per_pixel)
            else:
                arr = arr.reshape(info.rows, info.columns)
            return arr.astype(arr.dtype.newbyteorder("<")), info.photometric_interpretation
        decoder = get_decoder(source)
        arr, changes = decoder.as_array(encapsulate([data]), transfer_syntax_uid=UID(source),
                                        **info.codec_options(1))
        return arr, str(changes.get("photometric_interpretation", info.photometric_interpretation))
    except TranscodeError:
        raise
    except Exception as exc:
        raise TranscodeError(f"cannot decode the frame ({_name(source)}): {type(exc).__name__}: {exc}") \
            from exc


def convert_frame(data: bytes, source: str, target: str, info: PixelInfo) -> bytes:
    """One frame from ``source`` to ``target`` syntax (native target: little endian, interleaved)."""
    if source == target:
        return data
    if target in n.NATIVE and source in n.NATIVE and source != n.EXPLICIT_BE:
        return data
    arr = frame_array(data, source, info)
    native = np.ascontiguousarray(arr).tobytes()
    if target in n.NATIVE:
        return native
    photometric = info.photometric_interpretation
    if photometric.startswith("YBR") and source not in n.NATIVE:
        photometric = "RGB"                     # decoders hand back RGB
    options = dict(info.codec_options(1), planar_configuration=0, photometric_interpretation=photometric)
    try:
        return get_encoder(target).encode(native, **options)
    except Exception as exc:
        raise TranscodeError(f"cannot encode the frame as {_name(target)}: {type(exc).__name__}: {exc}") \
            from exc


def frames_from_file(source: BinaryIO, numbers: list[int]) -> tuple[str, PixelInfo, list[bytes]]:
    """Fallback when the stored layout does not locate frames (deflated files, 1-bit data): parse the
    object and return (stored syntax, pixel info, the requested frames' stored bytes) for 1-based numbers."""
    ds = pydicom.dcmread(source)
    stored = str(ds.file_meta.TransferSyntaxUID)
    info = pixel_info_from_dataset(ds)
    if "PixelData" not in ds:
        raise TranscodeError("the object has no pixel data")
    if UID(stored).is_compressed:
        frames = list(generate_frames(ds.PixelData, number_of_frames=info.number_of_frames))
        return stored, info, [frames[i - 1] for i in numbers]
    # The stored values, as a native frame holds them: no colour conversion (raw; pydicom's pixel_array
    # makes YBR_FULL / YBR_FULL_422 RGB), colour planes kept apart when PlanarConfiguration is 1.
    # Native YBR_FULL_422 comes back with its chroma upsampled (3 samples per pixel, still YBR).
    arr = pixel_array(ds, raw=True)
    if info.number_of_frames == 1:
        arr = arr[np.newaxis]
    if info.samples_per_pixel > 1 and info.planar_configuration:
        arr = arr.transpose(0, 3, 1, 2)
    native = [np.ascontiguousarray(arr[i - 1]) for i in numbers]
    if info.bits_allocated == 1:
        return n.EXPLICIT_LE, info, [np.packbits(f.ravel(), bitorder="little").tobytes() for f in native]
    return n.EXPLICIT_LE, info, [f.astype(f.dtype.newbyteorder("<")).tobytes() for f in native]


def pixel_info_from_json(metadata: dict) -> PixelInfo | None:
    """PixelInfo from an instance's DICOM JSON (None when it has no image pixel module)."""
    def first(tag: str, default=None):
        try:
            return metadata[tag]["Value"][0]
        except (KeyError, IndexError, TypeError):
            return default
    rows, columns = first("00280010"), first("00280011")
    if not rows or not columns:
        return None
    bits = int(first("00280100", 16) or 16)
    return PixelInfo(rows=int(rows), columns=int(columns), samples_per_pixel=int(first("00280002", 1) or 1),
                     bits_allocated=bits, bits_stored=int(first("00280101", bits) or bits),
                     pixel_representation=int(first("00280103", 0) or 0),
                     photometric_interpretation=str(first("00280004", "MONOCHROME2") or "MONOCHROME2"),
                     planar_configuration=int(first("00280006", 0) or 0),
                     number_of_frames=int(first("00280008", 1) or 1))


def pixel_info_from_dataset(ds) -> PixelInfo:
    return PixelInfo(rows=int(ds.get("Rows", 0) or 0), columns=int(ds.get("Columns", 0) or 0),
                     samples_per_pixel=int(ds.get("SamplesPerPixel", 1) or 1),
                     bits_allocated=int(ds.get("BitsAllocated", 16) or 16),
                     bits_stored=int(ds.get("BitsStored", ds.get("BitsAllocated", 16)) or 16),
                     pixel_representation=int(ds.get("PixelRepresentation", 0) or 0),
                     photometric_interpretation=str(ds.get("PhotometricInterpretation", "MONOCHROME2")),
                     planar_configuration=int(ds.get("PlanarConfiguration", 0) or 0),
                     number_of_frames=int(ds.get("NumberOfFrames", 1) or 1))


# ---- attribute values -------------------------------------------------------------------------------

def swap_bytes(data: bytes, unit: int) -> bytes:
    """Big endian words of ``unit`` bytes -> little endian."""
    usable = len(data) - len(data) % unit
    swapped = np.frombuffer(data[:usable], dtype=f">u{unit}").astype(f"<u{unit}").tobytes()
    return swapped + data[usable:]


def element_bytes(source: BinaryIO, path: str) -> bytes:
    """The little endian value bytes of the element at a bulk data path (``tag`` or ``tag/item/tag``).

    Raises KeyError when there is no such element."""
    try:
        ds = pydicom.dcmread(source)
    except Exception as exc:
        raise TranscodeError(f"cannot read the stored object: {type(exc).__name__}: {exc}") from exc
    parts = path.split("/")
    current = ds
    try:
        for index in range(0, len(parts) - 1, 2):
            current = current[int(parts[index], 16)].value[int(parts[index + 1])]
        element = current[int(parts[-1], 16)]
    except (IndexError, ValueError, TypeError) as exc:
        raise KeyError(path) from exc
    value = element.value
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
        if str(ds.file_meta.TransferSyntaxUID) == n.EXPLICIT_BE and element.VR in _SWAP_SIZES:
            data = swap_bytes(data, _SWAP_SIZES[element.VR])
        return data
    raise KeyError(path)


def dataset_from_json(metadata: dict, bulk_reader) -> pydicom.Dataset:
    """A pydicom Dataset from DICOM JSON; ``bulk_reader(tag, vr, uri) -> bytes`` resolves BulkDataURIs."""
    return pydicom.Dataset.from_json(metadata, bulk_data_uri_handler=bulk_reader)
