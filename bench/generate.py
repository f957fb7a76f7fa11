"""Deterministic synthetic data (pydicom + numpy), written once as Part-10 files and reused.

Sets (each in its own cache folder named by its parameters; ``manifest.json`` is written last and marks a
complete set, so an interrupted generation is redone):

- ``images``: S studies x 2 series x N CT instances of 512x512x16 bit (the retrieval workload).
- ``index``: K studies of one tiny instance each, realistic patient/study attributes, dates over 20 years, a
  modality mix (the query workload). Its manifest keeps the attributes the queries' expected counts need.
- ``bigseries``: one series of M small CT instances (QIDO /instances and series metadata).
- ``multiframe``: one instance of F frames of 512x512x16 bit (frame retrieval).

The same inputs always give the same bytes: UIDs come from ``generate_uid(entropy_srcs=...)`` and pixels from
seeded generators; nothing depends on the clock.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
import struct
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

UID_ROOT = "1.2.826.0.1.3680043.10.1234.9."     # the tests' root + ".9." for benchmark data
GENERATOR_VERSION = 1                            # bump when the bytes a set produces change

SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4", "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1", "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "MG": "1.2.840.10008.5.1.4.1.1.1.2", "PT": "1.2.840.10008.5.1.4.1.1.128",
    "NM": "1.2.840.10008.5.1.4.1.1.20",
}
MODALITY_MIX = [("CT", 0.28), ("MR", 0.20), ("CR", 0.18), ("DX", 0.12), ("US", 0.10), ("MG", 0.07),
                ("PT", 0.03), ("NM", 0.02)]
DESCRIPTIONS = {"CT": ["CT HEAD W/O CONTRAST", "CT CHEST", "CT ABDOMEN PELVIS W CONTRAST"],
                "MR": ["MRI BRAIN", "MRI KNEE LEFT", "MRI LUMBAR SPINE"], "CR": ["CHEST PA AND LAT", "HAND 2 VIEWS"],
                "DX": ["CHEST 1 VIEW", "ANKLE RIGHT"], "US": ["US ABDOMEN COMPLETE", "US THYROID"],
                "MG": ["MAMMO SCREENING BILATERAL"], "PT": ["PET CT WHOLE BODY"], "NM": ["NM BONE SCAN"]}
SYLLABLES = ["BA", "KO", "MI", "RA", "SEN", "TO", "LU", "VAN", "DE", "HAR", "NO", "PE", "GRA", "SCH", "WIL",
             "MOR", "AN", "EL", "IS", "KRA", "LIN", "OST", "BER", "FA", "GU", "HOL", "JA", "MAR", "NIE", "ROS"]
FIRST_NAMES = ["ANNA", "JOHN", "MARIA", "PETER", "LINDA", "JAMES", "SOFIA", "DAVID", "EMMA", "LUCAS", "MIA",
               "NOAH", "OLGA", "PAUL", "RUTH", "SAM", "TINA", "VICTOR", "WENDY", "YUSUF", "ZOE", "AHMED",
               "BEATA", "CARLOS", "DANA", "ERIK", "FATIMA", "GEORG", "HANA", "IVAN"]


@dataclass(frozen=True)
class Sizes:
    studies: int = 8              # images set
    series_per_study: int = 2
    instances_per_series: int = 100
    image_size: int = 512
    index_studies: int = 100_000
    big_series: int = 1000
    big_series_size: int = 128    # rows = columns of the big series' instances
    frames: int = 1000
    frame_size: int = 512

    @classmethod
    def full(cls) -> "Sizes":
        return cls()

    @classmethod
    def quick(cls) -> "Sizes":
        return cls(studies=2, instances_per_series=20, index_studies=2000, big_series=200, frames=200)


def uid(*parts) -> str:
    return generate_uid(prefix=UID_ROOT, entropy_srcs=[str(p) for p in parts])


def _base(sop_class: str, study_key: str, series_key: str, instance_key: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid("instance", study_key, series_key, instance_key)
    ds.StudyInstanceUID = uid("study", study_key)
    ds.SeriesInstanceUID = uid("series", study_key, series_key)
    return ds


def _image(ds: Dataset, rows: int, columns: int, frames: int = 1, pixels: bytes | None = None) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = 1024
    ds.WindowWidth = 2048
    if frames > 1:
        ds.NumberOfFrames = frames
    if pixels is not None:
        ds.PixelData = pixels


def _finish(ds: Dataset) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ct_pixels(seed: int, size: int) -> bytes:
    """A plausible CT slice: a disc of 'tissue' with noise, 12 bits stored."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    body = np.where(r < size * 0.42, 1000 + 40 * np.sin(xx / 7.0 + seed) + 30 * np.cos(yy / 11.0), 24)
    noise = rng.normal(0, 20, size=(size, size))
    return np.clip(body + noise, 0, 4095).astype("<u2").tobytes()


def _patient(ds: Dataset, name: str, pid: str, birth: str = "19600101", sex: str = "O") -> None:
    ds.PatientName = name
    ds.PatientID = pid
    ds.PatientBirthDate = birth
    ds.PatientSex = sex


def _study(ds: Dataset, date: str, accession: str, description: str, study_id: str) -> None:
    ds.StudyDate = date
    ds.StudyTime = "101500"
    ds.AccessionNumber = accession
    ds.StudyDescription = description
    ds.StudyID = study_id
    ds.ReferringPhysicianName = "REFERRER^BENCH"


# --- sets ----------------------------------------------------------------------------------------------------

def _set_dir(cache: Path, name: str, params: dict) -> Path:
    digest = hashlib.sha256(json.dumps({"v": GENERATOR_VERSION, **params}, sort_keys=True).encode()).hexdigest()
    return cache / f"{name}-{digest[:12]}"


def _ready(folder: Path) -> dict | None:
    manifest = folder / "manifest.json"
    if manifest.is_file():
        return json.loads(manifest.read_text())
    return None


def _fresh(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _write_manifest(folder: Path, manifest: dict) -> dict:
    tmp = folder / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, folder / "manifest.json")
    return manifest


def images_set(cache: Path, sizes: Sizes, log=print) -> dict:
    params = {"studies": sizes.studies, "series": sizes.series_per_study,
              "instances": sizes.instances_per_series, "size": sizes.image_size}
    folder = _set_dir(cache, "images", params)
    manifest = _ready(folder)
    if manifest:
        return manifest
    log(f"generating images set {params} in {folder}")
    _fresh(folder)
    studies = []
    for s in range(sizes.studies):
        study_key = f"images-{s}"
        series_list = []
        for se in range(sizes.series_per_study):
            series_key = f"se{se}"
            instances = []
            for i in range(sizes.instances_per_series):
                ds = _base(SOP_CLASSES["CT"], study_key, series_key, str(i))
                _patient(ds, f"ZZBENCH^IMAGES{s}", f"BENCH-IMG-{s:03d}")
                _study(ds, "20200101", f"IMGACC{s:05d}", "BENCH IMAGES", f"I{s}")
                ds.Modality = "CT"
                ds.SeriesNumber = se + 1
                ds.InstanceNumber = i + 1
                ds.ImagePositionPatient = [0, 0, float(i)]
                ds.SliceThickness = 1
                _image(ds, sizes.image_size, sizes.image_size,
                       pixels=ct_pixels(s * 100_000 + se * 10_000 + i, sizes.image_size))
                data = _finish(ds)
                rel = f"{s:03d}/{se}/{i:04d}.dcm"
                path = folder / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                instances.append({"path": rel, "sop": ds.SOPInstanceUID, "size": len(data)})
            series_list.append({"uid": uid("series", study_key, series_key), "instances": instances})
        studies.append({"uid": uid("study", study_key), "series": series_list})
    return _write_manifest(folder, {"set": "images", "params": params, "root": str(folder),
                                    "studies": studies})


def _index_plan(n: int) -> dict:
    """Columns of the index set, computed from one seeded generator (no files yet)."""
    rng = np.random.default_rng(20240611)
    n_patients = max(1, n // 3)
    last_names = [a + b for a in SYLLABLES for b in SYLLABLES]                 # 900 last names
    patient_last = rng.integers(0, len(last_names), size=n_patients)
    patient_first = rng.integers(0, len(FIRST_NAMES), size=n_patients)
    patient_birth = rng.integers(0, 365 * 80, size=n_patients)
    patient_sex = rng.choice(np.array(["F", "M", "O"]), size=n_patients, p=[0.5, 0.48, 0.02])
    study_patient = rng.integers(0, n_patients, size=n)
    start = dt.date(2005, 1, 1)
    days = (dt.date(2024, 12, 31) - start).days
    study_day = rng.integers(0, days + 1, size=n)
    names, weights = zip(*MODALITY_MIX)
    study_modality = rng.choice(np.array(names), size=n, p=np.array(weights) / sum(weights))
    study_time = rng.integers(0, 24 * 3600, size=n)
    desc_pick = rng.integers(0, 3, size=n)
    patients = [{"name": f"{last_names[patient_last[p]]}^{FIRST_NAMES[patient_first[p]]}",
                 "id": f"PAT{p:07d}",
                 "birth": (dt.date(1930, 1, 1) + dt.timedelta(days=int(patient_birth[p]))).strftime("%Y%m%d"),
                 "sex": str(patient_sex[p])} for p in range(n_patients)]
    studies = []
    for s in range(n):
        modality = str(study_modality[s])
        choices = DESCRIPTIONS[modality]
        t = int(study_time[s])
        studies.append({"patient": int(study_patient[s]),
                        "date": (start + dt.timedelta(days=int(study_day[s]))).strftime("%Y%m%d"),
                        "time": f"{t // 3600:02d}{t % 3600 // 60:02d}{t % 60:02d}",
                        "modality": modality, "description": choices[int(desc_pick[s]) % len(choices)]})
    return {"patients": patients, "studies": studies}


def _index_instance(s: int, study: dict, patient: dict) -> bytes:
    study_key = f"index-{s}"
    modality = study["modality"]
    ds = _base(SOP_CLASSES[modality], study_key, "se0", "0")
    _patient(ds, patient["name"], patient["id"], patient["birth"], patient["sex"])
    _study(ds, study["date"], f"ACC{s:08d}", study["description"], f"{s % 10**8}")
    ds.StudyTime = study["time"]
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SeriesDescription = study["description"]
    ds.InstitutionName = ["BENCH GENERAL HOSPITAL", "BENCH CLINIC NORTH", "BENCH CLINIC SOUTH"][s % 3]
    rng = np.random.default_rng(s)
    _image(ds, 8, 8, pixels=rng.integers(0, 4096, size=(8, 8), dtype=np.uint16).astype("<u2").tobytes())
    return _finish(ds)


def _write_index_chunk(args) -> list[int]:
    folder, first, chunk, patients = args
    sizes = []
    for offset, study in enumerate(chunk):
        s = first + offset
        data = _index_instance(s, study, patients[study["patient"]])
        path = Path(folder) / f"{s // 1000:04d}" / f"{s:07d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        sizes.append(len(data))
    return sizes


def index_set(cache: Path, sizes: Sizes, log=print) -> dict:
    params = {"studies": sizes.index_studies}
    folder = _set_dir(cache, "index", params)
    manifest = _ready(folder)
    if manifest:
        return manifest
    log(f"generating index set {params} in {folder}")
    _fresh(folder)
    plan = _index_plan(sizes.index_studies)
    patients = plan["patients"]
    chunk = 2000
    jobs = []
    for first in range(0, sizes.index_studies, chunk):
        part = plan["studies"][first:first + chunk]
        used = {st["patient"] for st in part}
        jobs.append((str(folder), first, part, {p: patients[p] for p in used}))
    file_sizes: list[int] = []
    with ProcessPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        for done in pool.map(_write_index_chunk, jobs):
            file_sizes.extend(done)
    studies = [{"uid": uid("study", f"index-{s}"), "series": uid("series", f"index-{s}", "se0"),
                "sop": uid("instance", f"index-{s}", "se0", "0"), "path": f"{s // 1000:04d}/{s:07d}.dcm",
                "size": file_sizes[s], **st} for s, st in enumerate(plan["studies"])]
    return _write_manifest(folder, {"set": "index", "params": params, "root": str(folder),
                                    "patients": patients, "studies": studies})


def bigseries_set(cache: Path, sizes: Sizes, log=print) -> dict:
    params = {"instances": sizes.big_series, "size": sizes.big_series_size}
    folder = _set_dir(cache, "bigseries", params)
    manifest = _ready(folder)
    if manifest:
        return manifest
    log(f"generating big series {params} in {folder}")
    _fresh(folder)
    instances = []
    for i in range(sizes.big_series):
        ds = _base(SOP_CLASSES["CT"], "bigseries", "se0", str(i))
        _patient(ds, "ZZBENCH^BIGSERIES", "BENCH-BIG-001")
        _study(ds, "20210315", "BIGACC0001", "BENCH BIG SERIES", "B1")
        ds.Modality = "CT"
        ds.SeriesNumber = 1
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0, 0, float(i) * 0.5]
        _image(ds, sizes.big_series_size, sizes.big_series_size,
               pixels=ct_pixels(7_000_000 + i, sizes.big_series_size))
        data = _finish(ds)
        rel = f"{i // 100:02d}/{i:05d}.dcm"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
        instances.append({"path": rel, "sop": ds.SOPInstanceUID, "size": len(data)})
    return _write_manifest(folder, {"set": "bigseries", "params": params, "root": str(folder),
                                    "study": uid("study", "bigseries"), "series": uid("series", "bigseries", "se0"),
                                    "instances": instances})


def warmup_instances(label: str, count: int = 10, size: int = 64) -> list[bytes]:
    """Small CT instances of a study of their own (patient ZZBENCH^WARMUP), to warm a server up before timing."""
    out = []
    for i in range(count):
        ds = _base(SOP_CLASSES["CT"], f"warmup-{label}", "se0", str(i))
        _patient(ds, "ZZBENCH^WARMUP", "BENCH-WARMUP")
        _study(ds, "20000101", "WARMUP", "BENCH WARMUP", "W")
        ds.Modality = "CT"
        ds.SeriesNumber = 1
        ds.InstanceNumber = i + 1
        _image(ds, size, size, pixels=ct_pixels(i, size))
        out.append(_finish(ds))
    return out


def multiframe_header(frames: int, size: int, study_key: str = "multiframe") -> tuple[Dataset, bytes]:
    """(dataset without pixels, Part-10 bytes up to and including the Pixel Data element header)."""
    ds = _base(SOP_CLASSES["CT"], study_key, "se0", "0")
    _patient(ds, "ZZBENCH^MULTIFRAME", "BENCH-MF-001")
    _study(ds, "20220601", "MFACC0001", "BENCH MULTIFRAME", "M1")
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    _image(ds, size, size, frames=frames)
    head = _finish(ds)
    length = frames * size * size * 2
    return ds, head + struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OW", 0, length)


def frame_bytes(index: int, size: int) -> bytes:
    """Frame ``index`` (0-based) of the multi-frame instance: a slice whose values encode the frame number."""
    return ct_pixels(9_000_000 + index, size)


def multiframe_set(cache: Path, sizes: Sizes, log=print) -> dict:
    params = {"frames": sizes.frames, "size": sizes.frame_size}
    folder = _set_dir(cache, "multiframe", params)
    manifest = _ready(folder)
    if manifest:
        return manifest
    log(f"generating multi-frame instance {params} in {folder}")
    _fresh(folder)
    ds, head = multiframe_header(sizes.frames, sizes.frame_size)
    digests = {}
    with open(folder / "multiframe.dcm", "wb") as out:
        out.write(head)
        for f in range(sizes.frames):
            data = frame_bytes(f, sizes.frame_size)
            if f in (0, int(sizes.frames * 0.9) - 1):
                digests[str(f + 1)] = hashlib.sha256(data).hexdigest()
            out.write(data)
    size = (folder / "multiframe.dcm").stat().st_size
    return _write_manifest(folder, {"set": "multiframe", "params": params, "root": str(folder),
                                    "study": ds.StudyInstanceUID, "series": ds.SeriesInstanceUID,
                                    "sop": ds.SOPInstanceUID, "path": "multiframe.dcm", "size": size,
                                    "frame_bytes": sizes.frame_size * sizes.frame_size * 2,
                                    "frame_sha256": digests})


def all_sets(cache: Path, sizes: Sizes, needed: set[str], log=print) -> dict:
    cache.mkdir(parents=True, exist_ok=True)
    makers = {"images": images_set, "index": index_set, "bigseries": bigseries_set, "multiframe": multiframe_set}
    return {name: makers[name](cache, sizes, log) for name in ("images", "bigseries", "multiframe", "index")
            if name in needed}


def sizes_dict(sizes: Sizes) -> dict:
    return asdict(sizes)
