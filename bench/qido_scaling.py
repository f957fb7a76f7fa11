"""QIDO-RS latency at 10,000 and at 100,000 studies on the same server (issue #3: no full scans).

    .venv/bin/python -m bench.qido_scaling [--index-cache bench/.cache/index-...] [--reps 30]

Loads the first tenth of the generated 100,000-study index set (bench/generate.py) with
``python -m app import`` (the STOW-RS code without HTTP), serves it with ``python -m app serve`` and times
each query over loopback; then imports the other 90,000 studies and times the same queries again. The
queries use patients and dates that exist in the first tenth, so both sizes answer the same question.
Prints a markdown table: median and p95 at each size and the ratio 100k/10k.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers import LiveServer, write_web_config  # noqa: E402


def _import(config: Path, paths: list[Path]) -> float:
    started = time.perf_counter()
    for start in range(0, len(paths), 2000):          # keep each command line short
        chunk = [str(p) for p in paths[start:start + 2000]]
        done = subprocess.run([sys.executable, "-m", "app", "import", "--config", str(config), *chunk],
                              cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
    return time.perf_counter() - started


def _queries(manifest: dict, tenth: int) -> list[tuple[str, str, int | None]]:
    first = manifest["studies"][:tenth]
    patient = manifest["patients"][first[0]["patient"]]
    prefix = patient["name"].split("^")[0][:4]
    some_study = first[len(first) // 2]
    return [
        ("studies?PatientID= (exact)", f"/api/studies?PatientID={patient['id']}", None),
        (f"studies?PatientName={prefix}*", f"/api/studies?PatientName={prefix}*&limit=100", None),
        ("studies?StudyDate=2015 range&limit=100", "/api/studies?StudyDate=20150101-20151231&limit=100", 100),
        ("studies?includefield=all&limit=100", "/api/studies?includefield=all&limit=100", 100),
        ("series?Modality=CT&limit=100", "/api/series?Modality=CT&limit=100", 100),
        ("studies/{uid}/series", f"/api/studies/{some_study['uid']}/series", 1),
    ]


def _time(url: str, queries, reps: int) -> dict[str, tuple[float, float]]:
    session = requests.Session()
    results = {}
    for label, path, expected in queries:
        samples = []
        for rep in range(reps + 3):
            started = time.perf_counter()
            response = session.get(url + path, headers={"Accept": "application/dicom+json"}, timeout=60)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
            if expected is not None and len(response.json()) != expected:
                raise RuntimeError(f"{path}: {len(response.json())} results, expected {expected}")
            if rep >= 3:                                  # three warm-up requests
                samples.append(elapsed)
        samples.sort()
        results[label] = (statistics.median(samples), samples[int(0.95 * (len(samples) - 1))])
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-cache", type=Path, default=None,
                        help="a generated index set folder (default: the largest bench/.cache/index-*)")
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()
    folder = args.index_cache or max((REPO / "bench" / ".cache").glob("index-*"),
                                     key=lambda p: len(list(p.iterdir())))
    manifest = json.loads((folder / "manifest.json").read_text())
    paths = [folder / s["path"] for s in manifest["studies"]]
    tenth = len(paths) // 10
    with tempfile.TemporaryDirectory(prefix="qido-scaling-") as work:
        config = write_web_config(Path(work), {})
        queries = _queries(manifest, tenth)
        rows = {}
        load = {}
        for size, batch in ((tenth, paths[:tenth]), (len(paths), paths[tenth:])):
            load[size] = _import(config, batch)
            server = LiveServer(config)
            try:
                rows[size] = _time(server.url, queries, args.reps)
            finally:
                server.stop()
    small, large = tenth, len(paths)
    print(f"Import: {small:,} studies in {load[small]:.0f} s, {large - small:,} more in {load[large]:.0f} s "
          f"({(large - small) / load[large]:.0f} studies/s)")
    print(f"\n| query | {small:,}: median / p95 ms | {large:,}: median / p95 ms | ratio of p95 |")
    print("|---|---|---|---|")
    for label, _, _ in queries:
        (m1, p1), (m2, p2) = rows[small][label], rows[large][label]
        print(f"| {label} | {m1:.1f} / {p1:.1f} | {m2:.1f} / {p2:.1f} | {p2 / p1:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
