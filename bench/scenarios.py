"""The scenarios. Each one times real HTTP requests against every server that can answer it, checks each
answer (status, part counts, bytes, JSON lengths) so that a fast wrong answer does not count, and records
samples in a ``Row``. A route of ours that answers 404/405/501 on an object known to be stored is reported as
"n/a (not implemented)" and the run goes on.

Requests to the servers are interleaved (ours, Orthanc, nginx, then the next repetition, with the order
rotated) so that noise on the shared machine hits every server alike; ratios of medians are the headline.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import statistics
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests

from bench import generate

NOT_IMPLEMENTED = (404, 405, 501)
MB = 1_000_000
STOW_CT = 'multipart/related; type="application/dicom"; boundary={b}'
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
# tag keywords in DICOM JSON
REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
SOP_INSTANCE_UID = "00080018"
PATIENT_ID = "00100020"
STUDY_DATE = "00080020"
MODALITY = "00080060"
MODALITIES_IN_STUDY = "00080061"


# --- results -------------------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float]) -> dict:
    if not values:
        return {}
    return {"n": len(values), "median": statistics.median(values), "p95": percentile(values, 0.95),
            "p5": percentile(values, 0.05), "p25": percentile(values, 0.25), "p75": percentile(values, 0.75),
            "min": min(values), "max": max(values), "mean": statistics.fmean(values)}


@dataclass
class Outcome:
    status: str = "ok"                  # ok | n/a | wrong | error | skipped
    samples: list = field(default_factory=list)
    note: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"status": self.status, "note": self.note, "samples": self.samples,
                "summary": summary(self.samples) if self.status == "ok" else {}, **self.extra}


@dataclass
class Row:
    group: str
    name: str
    kind: str = "latency"               # latency (s per request, lower is better) | throughput (higher is better)
    unit: str = "s"
    servers: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"group": self.group, "name": self.name, "kind": self.kind, "unit": self.unit,
                "servers": {k: v.to_dict() for k, v in self.servers.items()}, **self.extra}


class Wrong(Exception):
    """The server answered, but not correctly."""


class NotImplementedYet(Exception):
    pass


def expect_ok(response) -> None:
    if response.status_code != 200:
        raise Wrong(f"status {response.status_code}: {response.text[:200]}")


def json_body(response):
    """The body of a 200 answer as JSON (Wrong otherwise)."""
    expect_ok(response)
    try:
        return response.json()
    except ValueError:
        raise Wrong("not JSON")


# --- HTTP helpers --------------------------------------------------------------------------------------------

_local = threading.local()


def session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def get(url: str, accept: str | None = None, timeout: float = 600) -> tuple[requests.Response, float]:
    headers = {"Accept": accept} if accept else {}
    start = time.perf_counter()
    response = session().get(url, headers=headers, timeout=timeout, stream=True)
    # the whole body is part of the measured time; read in 1 MiB pieces (requests' default of 10 KiB makes
    # the Python client, not the server, the limit for a 50 MB series with Content-Length)
    body = b"".join(response.iter_content(1 << 20))
    elapsed = time.perf_counter() - start
    response._content = body
    return response, elapsed


def boundary_of(content_type: str) -> str:
    match = re.search(r'boundary="?([^";,\s]+)"?', content_type or "", re.I)
    if not match:
        raise Wrong(f"no boundary in Content-Type {content_type!r}")
    return match.group(1)


def parse_multipart(body: bytes, content_type: str) -> list[tuple[bytes, bytes]]:
    """[(header block, content)] of a multipart body."""
    delimiter = b"\r\n--" + boundary_of(content_type).encode()
    segments = (b"\r\n" + body).split(delimiter)
    parts = []
    for segment in segments[1:]:
        if segment.startswith(b"--"):
            break
        segment = segment[2:] if segment.startswith(b"\r\n") else segment
        head, sep, content = segment.partition(b"\r\n\r\n")
        if not sep:
            raise Wrong("multipart part without a header/body separator")
        parts.append((head, content))
    return parts


def multipart_body(files: list[bytes], boundary: str) -> bytes:
    out = []
    for data in files:
        out.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        out.append(data)
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def check_stow_response(response: requests.Response, expected: int) -> None:
    if response.status_code != 200:
        raise Wrong(f"STOW status {response.status_code}: {response.text[:300]}")
    try:
        body = response.json()
    except ValueError:
        raise Wrong(f"STOW response is not JSON: {response.text[:200]}")
    if isinstance(body, list):          # some servers wrap the dataset in an array
        body = body[0] if body else {}
    failed = body.get(FAILED_SOP_SEQUENCE, {}).get("Value", [])
    stored = body.get(REFERENCED_SOP_SEQUENCE, {}).get("Value", [])
    if failed or len(stored) != expected:
        raise Wrong(f"STOW stored {len(stored)} of {expected}, {len(failed)} failed")


class StreamBody:
    """An iterable request body of known length (sent with Content-Length, never held whole in memory)."""

    def __init__(self, factory: Callable[[], object], length: int):
        self.factory = factory
        self.length = length

    def __len__(self):
        return self.length

    def __iter__(self):
        return iter(self.factory())


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used so far (user+nice+system+irq+softirq+steal)."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    import os as _os
    busy = sum(fields[:3]) + sum(fields[5:8])          # user nice system (skip idle iowait) irq softirq steal
    return busy / _os.sysconf("SC_CLK_TCK")


# --- the benchmark context -----------------------------------------------------------------------------------

class Bench:
    def __init__(self, servers: dict, data: dict, sizes: generate.Sizes, reps: int, log=print,
                 stow_batch: int = 10, stow_clients=(1, 4), load_clients: int = 4, workdir: Path | None = None,
                 stow_rounds: int = 1, factories: dict | None = None):
        self.servers = servers            # name -> Server (ours, orthanc, nginx)
        self.data = data
        self.sizes = sizes
        self.reps = reps
        self.log = log
        self.stow_batch = stow_batch
        self.stow_clients = stow_clients
        self.load_clients = load_clients
        self.workdir = workdir
        self.stow_rounds = stow_rounds
        self.factories = factories or {}       # name -> callable(folder) -> Server (not started)
        self.rows: list[Row] = []
        self.extra: dict = {}
        self.nginx_files: dict[str, Path] = {}
        self.loaded: set[str] = set()

    def base(self, name: str) -> str:
        server = self.servers[name]
        return server.url + getattr(server, "dicomweb", "")

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        parts = []
        for name, outcome in row.servers.items():
            if outcome.status == "ok" and outcome.samples:
                med = statistics.median(outcome.samples)
                parts.append(f"{name}={med * 1000:.1f}ms" if row.kind == "latency" else f"{name}={med:.1f}{row.unit}")
            else:
                parts.append(f"{name}={outcome.status}{(' (' + outcome.note[:120] + ')') if outcome.note else ''}")
        self.log(f"  {row.group} / {row.name}: " + ", ".join(parts))
        return row

    # -- a generic repeated GET scenario -------------------------------------------------------------------

    def repeated(self, group: str, name: str, targets: dict, reps: int | None = None, warmup: int = 1) -> Row:
        """targets: server name -> (url, accept, check(response) -> None) ; ours first is probed."""
        reps = reps or self.reps
        row = Row(group, name)
        active = {}
        for server, (url, accept, check) in targets.items():
            outcome = Outcome()
            row.servers[server] = outcome
            try:
                response, _ = get(url, accept)
                if server == "ours" and response.status_code in NOT_IMPLEMENTED:
                    outcome.status = "n/a"
                    outcome.note = f"not implemented ({response.status_code})"
                    continue
                check(response)                 # the first answer is checked in full
                for _ in range(warmup - 1):
                    get(url, accept)
                active[server] = (url, accept, check)
            except Wrong as exc:
                outcome.status, outcome.note = "wrong", str(exc)[:500]
            except requests.RequestException as exc:
                outcome.status, outcome.note = "error", f"{type(exc).__name__}: {exc}"[:500]
        order = list(active)
        for rep in range(reps):
            rotated = order[rep % len(order):] + order[:rep % len(order)] if order else []
            for server in rotated:
                outcome = row.servers[server]
                if outcome.status != "ok":
                    continue
                url, accept, check = active[server]
                try:
                    response, elapsed = get(url, accept)
                    check(response)
                    outcome.samples.append(elapsed)
                    outcome.extra["bytes"] = len(response.content)
                except Wrong as exc:
                    outcome.status, outcome.note = "wrong", f"repetition {rep}: {exc}"[:500]
                except requests.RequestException as exc:
                    outcome.status, outcome.note = "error", f"{type(exc).__name__}: {exc}"[:500]
        return self.add(row)

    # -- STOW -----------------------------------------------------------------------------------------------

    def _stow_batches(self, files: list[Path], batch: int) -> list[tuple[bytes, int, int]]:
        """[(body, instance count, DICOM bytes)] with a fixed boundary."""
        out = []
        for i in range(0, len(files), batch):
            chunk = [p.read_bytes() for p in files[i:i + batch]]
            out.append((multipart_body(chunk, "bench-boundary-7d3f"), len(chunk), sum(len(c) for c in chunk)))
        return out

    def _stow_run(self, server: str, batches, clients: int, check: bool = True, target=None) -> dict:
        srv = target or self.servers[server]
        url = srv.url + srv.dicomweb + "/studies"
        headers = {"Content-Type": STOW_CT.format(b="bench-boundary-7d3f"), "Accept": "application/dicom+json"}
        latencies = []
        errors = []
        cpu_before = srv.cpu_seconds()
        client_before = sum(os.times()[:2])
        machine_before = machine_busy_seconds()

        def send(item):
            body, count, _ = item
            t0 = time.perf_counter()
            response = session().post(url, data=body, headers=headers, timeout=600)
            elapsed = time.perf_counter() - t0
            if check:
                try:
                    check_stow_response(response, count)
                except Wrong as exc:
                    errors.append(str(exc))
            elif response.status_code not in (200, 202, 409):
                errors.append(f"status {response.status_code}: {response.text[:200]}")
            latencies.append(elapsed)

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(send, batches))
        wall = time.perf_counter() - start
        cpu = srv.cpu_seconds() - cpu_before
        client_cpu = sum(os.times()[:2]) - client_before
        other_cpu = machine_busy_seconds() - machine_before - cpu - client_cpu
        instances = sum(b[1] for b in batches)
        nbytes = sum(b[2] for b in batches)
        return {"wall": wall, "instances": instances, "bytes": nbytes, "latencies": latencies, "errors": errors,
                "server_cpu_s": cpu, "client_cpu_s": client_cpu, "other_cpu_s": other_cpu, "inst_per_s": instances / wall, "mb_per_s": nbytes / MB / wall}

    def warm_up(self, server, label: str) -> None:
        """Two small STOW requests (a study of its own) so that lazy imports and cold caches are not timed."""
        for part in range(2):
            body = multipart_body(generate.warmup_instances(f"{label}-{part}"), "bench-boundary-7d3f")
            response = session().post(server.url + server.dicomweb + "/studies", data=body, timeout=120,
                                      headers={"Content-Type": STOW_CT.format(b="bench-boundary-7d3f"),
                                               "Accept": "application/dicom+json"})
            if response.status_code not in (200, 202, 409):
                self.log(f"  warm-up STOW to {server.name}: status {response.status_code}")

    def stow(self) -> None:
        """STOW-RS of the images set, one study per repetition, alternating 1 and N concurrent clients.

        Round 0 goes to the main servers (and is how the images set gets into them for the retrieval
        scenarios); each further round (``stow_rounds``) goes to a fresh pair of servers with empty storage,
        started for it and removed after it, for more repetitions under the same conditions."""
        images = self.data["images"]
        root = Path(images["root"])
        servers = [s for s in ("ours", "orthanc") if s in self.servers]
        results = {(s, c): [] for s in servers for c in self.stow_clients}
        for rnd in range(self.stow_rounds):
            targets = dict(self.servers)
            fresh = []
            if rnd > 0:
                for name in servers:
                    server = self.factories[name](self.workdir / f"stow-round{rnd}-{name}").start()
                    targets[name] = server
                    fresh.append(server)
            try:
                for name in servers:
                    self.warm_up(targets[name], f"stow-{rnd}")
                for index, study in enumerate(images["studies"]):
                    clients = self.stow_clients[index % len(self.stow_clients)]
                    files = [root / inst["path"] for series in study["series"] for inst in series["instances"]]
                    batches = self._stow_batches(files, self.stow_batch)
                    order = servers if (index + rnd) % 2 == 0 else servers[::-1]
                    for server in order:
                        run = self._stow_run(server, batches, clients, target=targets[server])
                        run["pair"] = (rnd, index)
                        results[(server, clients)].append(run)
                        self.log(f"  STOW round {rnd} study {index} {server} x{clients}: {run['inst_per_s']:.1f} "
                                 f"inst/s, {run['mb_per_s']:.1f} MB/s, "
                                 f"server CPU {run['server_cpu_s'] / run['wall']:.0%}, "
                                 f"client CPU {run['client_cpu_s'] / run['wall']:.0%}, "
                                 f"other processes {run['other_cpu_s'] / run['wall']:.0%}"
                                 + (f" ERRORS {run['errors'][:2]}" if run['errors'] else ""))
            finally:
                for server in fresh:
                    server.stop()
                    shutil.rmtree(server.folder, ignore_errors=True)
        self.loaded.add("images")
        for clients in self.stow_clients:
            for metric, unit in (("inst_per_s", "inst/s"), ("mb_per_s", "MB/s")):
                row = Row("STOW-RS", f"{clients} client{'s' if clients > 1 else ''}, {self.stow_batch} "
                                     f"instances/request ({unit})", kind="throughput", unit=unit)
                for server in servers:
                    runs = results[(server, clients)]
                    outcome = Outcome(samples=[r[metric] for r in runs])
                    errors = [e for r in runs for e in r["errors"]]
                    if errors:
                        outcome.status, outcome.note = "wrong", f"{len(errors)} failed requests: {errors[0]}"
                    if not runs:
                        outcome.status, outcome.note = "skipped", "no repetition with this client count"
                    lat = [x for r in runs for x in r["latencies"]]
                    outcome.extra = {"request_latency": summary(lat),
                                     "server_cpu_fraction": [r["server_cpu_s"] / r["wall"] for r in runs],
                                     "client_cpu_fraction": [r["client_cpu_s"] / r["wall"] for r in runs],
                                     "other_cpu_fraction": [r["other_cpu_s"] / r["wall"] for r in runs],
                                     "instances_per_rep": [r["instances"] for r in runs],
                                     "bytes_per_rep": [r["bytes"] for r in runs]}
                    row.servers[server] = outcome
                if "ours" in servers and "orthanc" in servers:
                    # ours and Orthanc stored the same study back to back: the ratio per pair cancels most of
                    # the machine's drift (disk writeback, neighbours), so it is steadier than a ratio of medians
                    theirs = {r["pair"]: r[metric] for r in results[("orthanc", clients)]}
                    paired = [r[metric] / theirs[r["pair"]] for r in results[("ours", clients)]
                              if theirs.get(r["pair"])]
                    row.extra["paired_ratio_ours_orthanc"] = summary(paired)
                self.add(row)

    def load(self, name: str) -> None:
        """Store a data set into both servers (parallel STOW), timing it; reported as a 'load' row."""
        if name in self.loaded:
            return
        manifest = self.data[name]
        root = Path(manifest["root"])
        if name == "index":
            files = [root / s["path"] for s in manifest["studies"]]
            batch = 50
        elif name == "bigseries":
            files = [root / i["path"] for i in manifest["instances"]]
            batch = 50
        elif name == "multiframe":
            files = [root / manifest["path"]]
            batch = 1
        elif name == "images":
            files = [root / inst["path"] for st in manifest["studies"] for se in st["series"]
                     for inst in se["instances"]]
            batch = self.stow_batch
        else:
            raise ValueError(name)
        row = Row("Load (STOW-RS)", f"{name}: {len(files)} instances, {self.load_clients} clients, "
                                    f"{batch}/request (inst/s)", kind="throughput", unit="inst/s")
        self.log(f"loading {name} ({len(files)} instances) into {', '.join(s for s in ('ours', 'orthanc') if s in self.servers)}")
        chunk = 5000 if name == "index" else len(files)       # bounded memory for the request bodies
        for server in ("ours", "orthanc"):
            if server not in self.servers:
                continue
            total = {"wall": 0.0, "instances": 0, "errors": [], "cpu": 0.0}
            for i in range(0, len(files), chunk):
                batches = self._stow_batches(files[i:i + chunk], batch)
                run = self._stow_run(server, batches, self.load_clients)
                total["wall"] += run["wall"]
                total["instances"] += run["instances"]
                total["errors"] += run["errors"]
                total["cpu"] += run["server_cpu_s"]
                if name == "index":
                    self.log(f"    {server}: {total['instances']} / {len(files)} "
                             f"({total['instances'] / total['wall']:.0f} inst/s)")
            outcome = Outcome(samples=[total["instances"] / total["wall"]],
                              extra={"seconds": total["wall"], "server_cpu_fraction": total["cpu"] / total["wall"]})
            if total["errors"]:
                outcome.status, outcome.note = "wrong", f"{len(total['errors'])} failed: {total['errors'][0]}"
            row.servers[server] = outcome
        self.loaded.add(name)
        self.add(row)

    # -- QIDO -----------------------------------------------------------------------------------------------

    def _qido_check(self, expected: int, predicate: Callable[[dict], bool] | None = None, exact: bool = True):
        def check(response):
            body = json_body(response)
            if not isinstance(body, list):
                raise Wrong("not a JSON array")
            if (len(body) != expected) if exact else (len(body) > expected):
                raise Wrong(f"{len(body)} results, expected {expected}")
            if predicate:
                bad = [item for item in body if not predicate(item)]
                if bad:
                    raise Wrong(f"{len(bad)} results do not match the query, e.g. {json.dumps(bad[0])[:200]}")
        return check

    def qido(self) -> None:
        for name in ("index", "images", "bigseries"):
            self.load(name)
        index = self.data["index"]
        studies = index["studies"]
        patients = index["patients"]
        first = studies[0]
        pid = patients[first["patient"]]["id"]
        n_pid = sum(1 for s in studies if s["patient"] == first["patient"])
        last = patients[first["patient"]]["name"].split("^")[0]
        prefix = last[:4]
        n_prefix = sum(1 for s in studies if patients[s["patient"]]["name"].startswith(prefix))
        if n_prefix > 1000:
            prefix, n_prefix = last, sum(1 for s in studies if patients[s["patient"]]["name"].startswith(last))
        all_studies = len(studies) + len(self.data["images"]["studies"]) + 1   # + big series' study
        date_from, date_to = "20150101", "20151231"
        n_dates = sum(1 for s in studies if date_from <= s["date"] <= date_to)
        n_ct_series = sum(1 for s in studies if s["modality"] == "CT") + \
            sum(len(st["series"]) for st in self.data["images"]["studies"]) + 1
        img_study = self.data["images"]["studies"][0]
        big = self.data["bigseries"]

        def val(item, tag):
            values = item.get(tag, {}).get("Value", [])
            return values[0] if values else None

        def has(tag):
            return lambda item: tag in item

        def name_prefix(item):
            v = val(item, "00100010")
            alpha = v.get("Alphabetic", "") if isinstance(v, dict) else str(v or "")
            return alpha.upper().startswith(prefix)

        queries = [
            ("studies?PatientID (exact)", f"/studies?PatientID={pid}", n_pid, lambda i: val(i, PATIENT_ID) == pid),
            (f"studies?PatientName={prefix}* (prefix wildcard, {n_prefix} matches)",
             f"/studies?PatientName={prefix}*", n_prefix, name_prefix),
            (f"studies?StudyDate={date_from}-{date_to}&limit=100", f"/studies?StudyDate={date_from}-{date_to}&limit=100",
             min(100, n_dates), lambda i: date_from <= (val(i, STUDY_DATE) or "") <= date_to),
            ("studies?includefield=all&limit=100", "/studies?includefield=all&limit=100", min(100, all_studies),
             has(PATIENT_ID)),
            ("series?Modality=CT&limit=100", "/series?Modality=CT&limit=100", min(100, n_ct_series),
             lambda i: val(i, MODALITY) == "CT"),
            ("studies/{uid}/series (2 series)", f"/studies/{img_study['uid']}/series", len(img_study["series"]),
             has("0020000E")),
            (f"studies/{{uid}}/series/{{uid}}/instances ({len(big['instances'])} instances)",
             f"/studies/{big['study']}/series/{big['series']}/instances", len(big["instances"]), has(SOP_INSTANCE_UID)),
        ]
        self.extra["qido_expected"] = {q[0]: q[2] for q in queries}
        for label, path, expected, predicate in queries:
            targets = {s: (self.base(s) + path, "application/dicom+json", self._qido_check(expected, predicate))
                       for s in ("ours", "orthanc") if s in self.servers}
            self.repeated("QIDO-RS", label, targets)

    # -- WADO-RS --------------------------------------------------------------------------------------------

    def _prepare_nginx_files(self) -> None:
        """Series-sized, instance and frame files under nginx's root, from the same bytes."""
        if self.nginx_files or "nginx" not in self.servers:
            return
        root = self.servers["nginx"].root
        images = self.data["images"]
        series = images["studies"][0]["series"][0]
        src = Path(images["root"])
        with open(root / "series.bin", "wb") as out:
            for inst in series["instances"]:
                out.write((src / inst["path"]).read_bytes())
        (root / "instance.dcm").write_bytes((src / series["instances"][0]["path"]).read_bytes())
        self.nginx_files = {"series": root / "series.bin", "instance": root / "instance.dcm"}
        if "multiframe" in self.data:
            size = self.sizes.frame_size
            for label, index in (("frame1", 0), ("frameN", int(self.sizes.frames * 0.9) - 1)):
                (root / f"{label}.bin").write_bytes(generate.frame_bytes(index, size))
                self.nginx_files[label] = root / f"{label}.bin"

    def _nginx_check(self, expected: int):
        def check(response):
            if response.status_code != 200 or len(response.content) != expected:
                raise Wrong(f"status {response.status_code}, {len(response.content)} bytes, expected {expected}")
        return check

    @staticmethod
    def _instances_check(expected_sops: list[str], expected_bytes: int, tolerance: float = 0.02):
        def check(response):
            expect_ok(response)
            parts = parse_multipart(response.content, response.headers.get("Content-Type", ""))
            if len(parts) != len(expected_sops):
                raise Wrong(f"{len(parts)} parts, expected {len(expected_sops)}")
            total = sum(len(c) for _, c in parts)
            if abs(total - expected_bytes) > tolerance * expected_bytes:
                raise Wrong(f"{total} bytes in parts, expected about {expected_bytes}")
            for _, content in parts:
                if content[128:132] != b"DICM":
                    raise Wrong("a part is not a Part-10 file")
            found = set()
            for _, content in parts:
                match = re.search(rb"1\.2\.826\.0\.1\.3680043\.10\.1234\.9\.[0-9.]+", content[132:2000])
                if match:
                    found.add(match.group(0).rstrip(b".\x00").decode())
            # the first UID in the meta header is MediaStorageSOPInstanceUID
            if not found <= set(expected_sops) or len(found) != len(expected_sops):
                raise Wrong("the parts are not the expected instances")
        return check

    @staticmethod
    def _frame_check(nbytes: int, sha: str):
        def check(response):
            expect_ok(response)
            parts = parse_multipart(response.content, response.headers.get("Content-Type", ""))
            if len(parts) != 1:
                raise Wrong(f"{len(parts)} parts, expected 1")
            content = parts[0][1]
            if len(content) != nbytes or hashlib.sha256(content).hexdigest() != sha:
                raise Wrong(f"frame of {len(content)} bytes, expected {nbytes} with the generator's content")
        return check

    @staticmethod
    def _metadata_check(expected_sops: list[str]):
        def check(response):
            body = json_body(response)
            if not isinstance(body, list) or len(body) != len(expected_sops):
                raise Wrong(f"{len(body) if isinstance(body, list) else 'no'} items, expected {len(expected_sops)}")
            sops = {(item.get(SOP_INSTANCE_UID, {}).get("Value") or [None])[0] for item in body}
            if sops != set(expected_sops):
                raise Wrong("metadata items are not the expected instances")
            if not all("7FE00010" not in item or "BulkDataURI" in item["7FE00010"] or "InlineBinary" not in
                       item["7FE00010"] for item in body):
                raise Wrong("pixel data inline in metadata")
        return check

    @staticmethod
    def _image_check(kind: str):
        magic = {"jpeg": b"\xff\xd8", "png": b"\x89PNG"}[kind]

        def check(response):
            expect_ok(response)
            body = response.content
            if not body.startswith(magic):
                # a multipart wrapper is acceptable if its single part is the image
                ctype = response.headers.get("Content-Type", "")
                if ctype.startswith("multipart/"):
                    parts = parse_multipart(body, ctype)
                    if len(parts) == 1 and parts[0][1].startswith(magic):
                        return
                raise Wrong(f"not a {kind} image ({ctype})")
        return check

    def wado(self) -> None:
        for name in ("images", "bigseries", "multiframe"):
            self.load(name)
        self._prepare_nginx_files()
        images = self.data["images"]
        study = images["studies"][0]
        series = study["series"][0]
        inst = series["instances"][0]
        series_sops = [i["sop"] for i in series["instances"]]
        series_bytes = sum(i["size"] for i in series["instances"])
        study_sops = [i["sop"] for se in study["series"] for i in se["instances"]]
        big = self.data["bigseries"]
        big_sops = [i["sop"] for i in big["instances"]]
        mf = self.data["multiframe"]
        frame_n = int(self.sizes.frames * 0.9)
        servers = [s for s in ("ours", "orthanc") if s in self.servers]
        nginx = self.servers.get("nginx")
        dicom_accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
        path_series = f"/studies/{study['uid']}/series/{series['uid']}"
        path_inst = f"{path_series}/instances/{inst['sop']}"
        path_mf = f"/studies/{mf['study']}/series/{mf['series']}/instances/{mf['sop']}"

        def targets(path, accept, check, nginx_file=None, nginx_bytes=None):
            out = {s: (self.base(s) + path, accept, check) for s in servers}
            if nginx and nginx_file in self.nginx_files:
                out["nginx"] = (nginx.url + "/" + self.nginx_files[nginx_file].name, None,
                                self._nginx_check(nginx_bytes))
            return out

        self.repeated("WADO-RS", f"series ({len(series_sops)} instances, {series_bytes / MB:.0f} MB)",
                      targets(path_series, dicom_accept, self._instances_check(series_sops, series_bytes),
                              "series", series_bytes))
        self.repeated("WADO-RS", "instance", targets(path_inst, dicom_accept,
                                                     self._instances_check([inst["sop"]], inst["size"]),
                                                     "instance", inst["size"]))
        for label, number, nfile in (("frame 1", 1, "frame1"), (f"frame {frame_n}", frame_n, "frameN")):
            self.repeated("WADO-RS", f"{label} of a {self.sizes.frames}-frame instance",
                          targets(f"{path_mf}/frames/{number}", FRAME_ACCEPT,
                                  self._frame_check(mf["frame_bytes"], mf["frame_sha256"][str(number)]),
                                  nfile, mf["frame_bytes"]))
        self.repeated("WADO-RS", f"series metadata ({len(series_sops)} instances)",
                      targets(f"{path_series}/metadata", "application/dicom+json", self._metadata_check(series_sops)))
        self.repeated("WADO-RS", f"series metadata ({len(big_sops)} instances)",
                      targets(f"/studies/{big['study']}/series/{big['series']}/metadata", "application/dicom+json",
                              self._metadata_check(big_sops)))
        self.repeated("WADO-RS", f"study metadata ({len(study_sops)} instances)",
                      targets(f"/studies/{study['uid']}/metadata", "application/dicom+json",
                              self._metadata_check(study_sops)))
        self.repeated("WADO-RS", "instance rendered (image/jpeg)",
                      targets(f"{path_inst}/rendered", "image/jpeg", self._image_check("jpeg")))

    # -- WADO-URI -------------------------------------------------------------------------------------------

    WADO_URI_CANDIDATES = ("/wadouri", "/api/wadouri", "/wado", "/api/wado")

    def wadouri(self) -> None:
        self.load("images")
        self._prepare_nginx_files()
        images = self.data["images"]
        study = images["studies"][0]
        series = study["series"][0]
        inst = series["instances"][0]
        query = f"?requestType=WADO&studyUID={study['uid']}&seriesUID={series['uid']}&objectUID={inst['sop']}"
        ours_path = None
        if "ours" in self.servers:
            for candidate in self.WADO_URI_CANDIDATES:
                try:
                    response, _ = get(self.servers["ours"].url + candidate + query + "&contentType=application/dicom")
                except requests.RequestException:
                    continue
                if response.status_code not in NOT_IMPLEMENTED:
                    ours_path = candidate
                    break

        def dicom_check(response):
            expect_ok(response)
            if response.content[128:132] != b"DICM" or abs(len(response.content) - inst["size"]) > 0.02 * inst["size"]:
                raise Wrong(f"not the Part-10 instance ({len(response.content)} bytes)")

        for label, ctype, check, nfile in (
                ("DICOM (contentType=application/dicom)", "application/dicom", dicom_check, "instance"),
                ("JPEG (contentType=image/jpeg)", "image/jpeg", self._image_check("jpeg"), None)):
            targets = {}
            if "ours" in self.servers:
                # no route found: the probe in repeated() sees the 404 of /wadouri and reports n/a
                targets["ours"] = (self.servers["ours"].url + (ours_path or "/wadouri") + query
                                   + f"&contentType={ctype}", None, check)
            if "orthanc" in self.servers:
                targets["orthanc"] = (self.servers["orthanc"].url + "/wado" + query + f"&contentType={ctype}",
                                      None, check)
            if nfile and "nginx" in self.servers:
                targets["nginx"] = (self.servers["nginx"].url + "/instance.dcm", None, self._nginx_check(inst["size"]))
            self.repeated("WADO-URI", label, targets)


# --- 2 GB upload: memory ---------------------------------------------------------------------------------

def huge_upload_body(frames: int, size: int = 512, boundary: str = "bench-big") -> StreamBody:
    """One multi-frame instance of frames x size x size x 2 bytes in a STOW body, made on the fly."""
    _, head = generate.multiframe_header(frames, size, study_key=f"huge-{frames}")
    pixel_bytes = frames * size * size * 2
    opening = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    closing = f"\r\n--{boundary}--\r\n".encode()
    block = bytes(range(256)) * 4096            # 1 MiB

    def chunks():
        yield opening
        yield head
        sent = 0
        while sent < pixel_bytes:
            piece = block[: min(len(block), pixel_bytes - sent)]
            sent += len(piece)
            yield piece
        yield closing

    return StreamBody(chunks, len(opening) + len(head) + pixel_bytes + len(closing))


def memory_upload(server, url: str, frames: int, log=print) -> Outcome:
    body = huge_upload_body(frames)
    headers = {"Content-Type": STOW_CT.format(b="bench-big"), "Accept": "application/dicom+json"}
    before = server.sampler.start_window()
    hwm_before = None
    cpu_before = server.cpu_seconds()
    start = time.perf_counter()
    try:
        response = requests.post(url, data=body, headers=headers, timeout=3600)
    except requests.RequestException as exc:
        return Outcome(status="error", note=f"{type(exc).__name__}: {exc}"[:500])
    wall = time.perf_counter() - start
    peak = server.sampler.window_peak()
    outcome = Outcome(samples=[len(body) / MB / wall])
    outcome.extra = {"rss_before": before, "rss_peak": peak, "rss_growth": peak - before,
                     "seconds": wall, "body_bytes": len(body), "server_cpu_s": server.cpu_seconds() - cpu_before,
                     "hwm_before": hwm_before}
    try:
        check_stow_response(response, 1)
    except Wrong as exc:
        outcome.status, outcome.note = "wrong", str(exc)
    log(f"  {server.name}: {len(body) / 2**30:.2f} GiB in {wall:.1f} s = {len(body) / MB / wall:.0f} MB/s, "
        f"RSS {before / 2**20:.0f} -> peak {peak / 2**20:.0f} MiB (+{(peak - before) / 2**20:.0f} MiB)"
        + (f" [{outcome.status}: {outcome.note[:200]}]" if outcome.status != "ok" else ""))
    return outcome


def run_guarded(bench: Bench, name: str, fn: Callable[[], None]) -> None:
    """Run one scenario group; an exception becomes an error row, never the end of the run."""
    try:
        fn()
    except Exception as exc:     # the run goes on with the other scenarios
        bench.log(f"scenario {name} failed: {exc}\n{traceback.format_exc()}")
        bench.add(Row(name.upper(), f"{name} (scenario error)",
                      servers={"ours": Outcome(status="error", note=f"{type(exc).__name__}: {exc}"[:500])}))
