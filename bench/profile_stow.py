"""Where does our STOW time go? Profile the server with py-spy while the harness stores part of the images set.

    pip install --target /tmp/pyspy py-spy        # not a project dependency
    .venv/bin/python -m bench.profile_stow --py-spy /tmp/pyspy/bin/py-spy --clients 1
    .venv/bin/python -m bench.profile_stow --py-spy /tmp/pyspy/bin/py-spy --clients 4
    .venv/bin/python -m bench.profile_stow --py-spy /tmp/pyspy/bin/py-spy --clients 1 --workdir /dev/shm/prof

Prints the throughput and the share of the request threads' samples (inside ``store_request``) spent in each
step: putting the blob, waiting for the batch's fsyncs, waiting for the SQLite write lock (BEGIN
IMMEDIATE), COMMIT, the index statements, inspection (pydicom parse + DICOM JSON), the multipart reader; and
the samples of waitress's I/O threads receiving request bodies. Samples are summed over the worker processes
(``serve`` starts one per core). py-spy itself costs about a third of the throughput; read the shares, not the
rate.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench import generate
from bench.scenarios import Bench
from bench.servers import OurServer

HERE = Path(__file__).resolve().parent

STEPS = [  # (label, predicate on the ';'-joined stack)
    ("blob put (rename into storage, fsync queued)", lambda s: "FileSystemStorage.put_file" in s),
    ("waiting for the batch's blob fsyncs", lambda s: "FileSystemStorage.sync" in s),
    ("BEGIN IMMEDIATE (waiting for the write lock)", lambda s: "write_transaction.__enter__" in s),
    ("COMMIT (WAL fsync)", lambda s: "write_transaction.__exit__" in s),
    ("index statements", lambda s: "_store_batch_once (app/index/store.py" in s and "write_transaction" not in s),
    ("inspect (pydicom parse + DICOM JSON)", lambda s: "inspect_file" in s),
    ("  of which pydicom dcmread", lambda s: "inspect_file" in s and "dcmread" in s),
    ("multipart read/spool", lambda s: "iter_parts" in s),
]


def analyse(raw: Path) -> dict:
    steps, receiving, request = Counter(), 0, 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        if "wasyncore.py" in stack and "handler_thread" not in stack and "handle_read" in stack:
            receiving += n
        if "store_request (app/stow/service.py" not in stack:
            continue
        request += n
        for label, match in STEPS:
            if match(stack):
                steps[label] += n
    return {"request_samples": request, "receiving_samples": receiving,
            "shares": {label: steps[label] / request for label, _ in STEPS if request}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_stow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--studies", type=int, default=4, help="studies of the full images set to store")
    parser.add_argument("--workdir", default=None, help="server storage folder (default: a temp dir)")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    args = parser.parse_args(argv)

    sizes = generate.Sizes.full()
    data = generate.all_sets(HERE / ".cache", sizes, {"images"})
    folder = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="dicomcloud-prof-"))
    raw = folder.parent / f"{folder.name}-pyspy-{args.clients}.txt"
    server = OurServer(folder).start()
    try:
        bench = Bench({"ours": server}, data, sizes, 1, workdir=folder, log=lambda *_: None)
        bench.warm_up(server, "profile")
        spy = subprocess.Popen([args.py_spy, "record", "-p", str(server.pid), "-o", str(raw), "--format", "raw",
                                "-r", str(args.rate), "--idle", "--threads", "--subprocesses"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        root = Path(data["images"]["root"])
        files = [root / i["path"] for st in data["images"]["studies"][:args.studies] for se in st["series"]
                 for i in se["instances"]]
        run = bench._stow_run("ours", bench._stow_batches(files, 10), args.clients)
        spy.send_signal(2)
        spy.wait(60)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    result = analyse(raw)
    print(f"{run['instances']} instances, {args.clients} client(s): {run['inst_per_s']:.0f} inst/s, "
          f"{run['mb_per_s']:.0f} MB/s, server CPU {run['server_cpu_s'] / run['wall']:.2f} cores "
          f"(profiled; py-spy samples in {raw})")
    for label, share in result["shares"].items():
        print(f"  {share:6.0%}  {label}")
    wall_samples = run["wall"] * args.rate
    print(f"  waitress I/O thread receiving bodies: {result['receiving_samples'] / wall_samples:.0%} of the wall time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
