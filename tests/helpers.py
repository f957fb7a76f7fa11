"""Test helpers: deterministic DICOM objects, multipart bodies, a live server process."""
from __future__ import annotations

import io
import os
import random
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from app.storage.base import CHUNK_SIZE

REPO = Path(__file__).resolve().parent.parent
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
UID_ROOT = "1.2.826.0.1.3680043.10.1234."


def sample_path(name: str) -> str:
    path = get_testdata_file(name, download=False)
    assert path, f"pydicom test file {name} is not bundled"
    return path


def sample_bytes(name: str) -> bytes:
    return Path(sample_path(name)).read_bytes()


def uid(*parts) -> str:
    """A deterministic UID from the given parts."""
    return generate_uid(prefix=UID_ROOT, entropy_srcs=[str(p) for p in parts])


def make_dataset(study: str = "s1", series: str = "se1", instance: str = "i1", *, rows: int = 16,
                 columns: int = 16, frames: int = 1, modality: str = "CT", patient_name: str = "Doe^John",
                 patient_id: str = "PID-1", study_date: str = "20240102", seed: int = 0,
                 sop_class: str = CT_IMAGE_STORAGE, **attributes) -> Dataset:
    """A small, valid image object; UIDs derived from the given labels so tests can predict them."""
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid("instance", study, series, instance)
    ds.StudyInstanceUID = uid("study", study)
    ds.SeriesInstanceUID = uid("series", study, series)
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = study_date
    ds.StudyTime = "101500"
    ds.AccessionNumber = f"ACC-{study}"
    ds.StudyID = study[:16]
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 4096, size=(frames, rows, columns), dtype=np.uint16)
    ds.PixelData = pixels.tobytes()
    for key, value in attributes.items():
        setattr(ds, key, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_instance(*args, **kwargs) -> bytes:
    return to_bytes(make_dataset(*args, **kwargs))


def huge_instance_stream(label: str, frames: int, rows: int = 512, columns: int = 512,
                         boundary: str = "big", chunk: int = 1 << 20):
    """A multipart body holding one native multi-frame instance of frames*rows*columns*2 bytes, made on
    the fly so a test can upload gigabytes without having them on disk or in memory."""
    ds = make_dataset(label, "s", "1", rows=rows, columns=columns)
    del ds.PixelData
    ds.NumberOfFrames = frames
    header = io.BytesIO()
    ds.save_as(header, enforce_file_format=True)
    size = frames * rows * columns * 2
    yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    yield header.getvalue() + struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OW", 0, size)
    block = bytes(range(256)) * (chunk // 256)
    sent = 0
    while sent < size:
        piece = block[: min(chunk, size - sent)]
        sent += len(piece)
        yield piece
    yield f"\r\n--{boundary}--\r\n".encode()


def make_source(folder: Path, data: bytes, name: str = "upload.tmp") -> Path:
    """A file to hand to a blob store."""
    path = folder / name
    path.write_bytes(data)
    return path


STORAGE_DATA = random.Random(99).randbytes(3 * CHUNK_SIZE + 12345)   # spans several default chunks


def assert_every_operation_is_a_storage_error(storage, key: str, source: Path) -> None:
    """Each BlobStorage operation on ``key`` raises StorageError, never BlobNotFound (which would turn a
    broken store or a refused key into a 404 for a blob that may well exist)."""
    import pytest

    from app.errors import BlobNotFound, StorageError
    operations = {
        "put_file": lambda: storage.put_file(key, str(source)),
        "put_file move": lambda: storage.put_file(key, str(source), move=True),
        "open": lambda: storage.open(key),
        "size": lambda: storage.size(key),
        "exists": lambda: storage.exists(key),
        "delete": lambda: storage.delete(key),
        "read_range": lambda: storage.read_range(key, 0, 1),
        "iter_range": lambda: list(storage.iter_range(key)),
    }
    for name, operation in operations.items():
        with pytest.raises(StorageError) as info:
            operation()
        assert not isinstance(info.value, BlobNotFound), name


def multipart(parts, boundary: str = "test-boundary-7d3f") -> bytes:
    """parts: bytes (typed application/dicom) or (headers dict, bytes)."""
    out = io.BytesIO()
    for part in parts:
        headers, body = (part if isinstance(part, tuple) else ({"Content-Type": "application/dicom"}, part))
        out.write(f"--{boundary}\r\n".encode())
        for name, value in headers.items():
            out.write(f"{name}: {value}\r\n".encode())
        out.write(b"\r\n")
        out.write(body)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


def stow_headers(boundary: str = "test-boundary-7d3f", type_: str = "application/dicom", quoted: bool = True,
                 accept: str | None = None) -> dict:
    type_param = f'"{type_}"' if quoted else type_
    headers = {"Content-Type": f"multipart/related; type={type_param}; boundary={boundary}"}
    if accept:
        headers["Accept"] = accept
    return headers


def seq_values(body: dict, tag: str) -> list:
    return body.get(tag, {}).get("Value", [])


def value(item: dict, tag: str):
    values = item.get(tag, {}).get("Value", [])
    return values[0] if values else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_web_config(folder: Path, settings: dict[str, str]) -> Path:
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<configuration>", "  <appSettings>"]
    for key, val in settings.items():
        lines.append(f'    <add key="{key}" value="{val}" />')
    lines += ["  </appSettings>", "</configuration>"]
    path = folder / "web.config"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class LiveServer:
    """``python -m app serve`` in a subprocess, exactly as other tooling starts it (one worker process
    unless ``extra_args`` say otherwise, so that the process's memory and files are the server's)."""

    def __init__(self, config: Path, env: dict | None = None, extra_args: list[str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("app__", "APPSETTING_"))}
        environment.update(env or {})
        self.log = open(config.parent / "server.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--config", str(config), "--host", "127.0.0.1",
             "--port", str(self.port), *(extra_args or ["--workers", "1"])], cwd=REPO, env=environment, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {(config.parent / 'server.log').read_text()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not become healthy in 30 s")

    def _status(self, field: str) -> int:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    def rss_bytes(self) -> int:
        return self._status("VmRSS")

    def peak_rss_bytes(self) -> int:
        """The process's high-water mark of resident memory (VmHWM)."""
        return self._status("VmHWM")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


