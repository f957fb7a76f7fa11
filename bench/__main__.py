"""``python -m bench``: generate the data, start the servers, run the scenarios, write the results.

    python -m bench                      full run (about an hour with the 100,000-study index)
    python -m bench --quick              small sizes, a couple of minutes
    python -m bench --only stow,memory   a subset: stow, qido, wado, wadouri, memory
"""
from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from bench import generate, report
from bench.scenarios import Bench, memory_upload, run_guarded
from bench.servers import NginxServer, OrthancServer, OurServer

SCENARIOS = ("stow", "qido", "wado", "wadouri", "memory")
NEEDS = {"stow": {"images"}, "qido": {"index", "images", "bigseries"},
         "wado": {"images", "bigseries", "multiframe"}, "wadouri": {"images"}, "memory": set()}
HERE = Path(__file__).resolve().parent


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}"


def versions(servers: dict) -> dict:
    import numpy
    import pydicom
    import sqlalchemy
    from importlib.metadata import version
    out = {"Python": platform.python_version(), "pydicom": pydicom.__version__, "numpy": numpy.__version__,
           "SQLAlchemy": sqlalchemy.__version__, "waitress": version("waitress"), "SQLite": sqlite3.sqlite_version}
    for name, server in servers.items():
        out[server.label] = server.version()
    return out


def fsync_probe(folder: Path, count: int = 200, size: int = 524_288) -> dict:
    """What one durable small write costs on this disk: write+fsync of a file and its directory, and a
    SQLite commit with synchronous=FULL in WAL mode, against the same without fsync. Bounds STOW rates."""
    folder.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)
    results = {}
    for sync in (False, True):
        start = time.perf_counter()
        for i in range(count):
            path = folder / f"f{sync}{i}.bin"
            with open(path, "wb") as handle:
                handle.write(data)
                if sync:
                    handle.flush()
                    os.fsync(handle.fileno())
            if sync:
                fd = os.open(folder, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
        elapsed = time.perf_counter() - start
        results[f"{count} x 512 KiB file writes{' + fsync(file, dir) each' if sync else ''}"] = \
            f"{elapsed / count * 1000:.2f} ms each, {count * size / 1e6 / elapsed:.0f} MB/s"
    for mode in ("OFF", "FULL"):
        db = sqlite3.connect(folder / f"probe-{mode}.sqlite3", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={mode}")
        db.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
        start = time.perf_counter()
        for i in range(count * 4):
            db.execute("BEGIN")
            db.execute("INSERT INTO t (b) VALUES (?)", ("x" * 200,))
            db.execute("COMMIT")
        results[f"SQLite WAL commit, synchronous={mode}"] = \
            f"{(time.perf_counter() - start) / (count * 4) * 1000:.2f} ms each"
        db.close()
    shutil.rmtree(folder, ignore_errors=True)
    return results


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small data sets and few repetitions")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated scenarios (default all): {','.join(SCENARIOS)}")
    parser.add_argument("--out", default=str(HERE / "results"), help="folder for the markdown and JSON results")
    parser.add_argument("--cache", default=str(HERE / ".cache"), help="folder for the generated data (reused)")
    parser.add_argument("--workdir", default=None, help="folder for the servers' storage (default: a temp dir)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per request scenario "
                                                               "(default 20, quick 5)")
    parser.add_argument("--stow-batch", type=int, default=10, help="instances per STOW request (default 10)")
    parser.add_argument("--stow-rounds", type=int, default=None,
                        help="rounds of the STOW scenario over the images set; rounds after the first go to fresh "
                             "servers (default 3, quick 1)")
    parser.add_argument("--load-clients", type=int, default=4, help="parallel clients loading data (default 4)")
    parser.add_argument("--memory-gib", type=float, default=None,
                        help="size of the large STOW upload in GiB (default 2, quick 0.25)")
    parser.add_argument("--ours-threads", type=int, default=None, help="`serve --threads` for our server")
    parser.add_argument("--ours-workers", type=int, default=None,
                        help="`serve --workers` for our server (only if its CLI has the option)")
    parser.add_argument("--no-orthanc", action="store_true", help="measure our server only")
    parser.add_argument("--no-nginx", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the servers' storage after the run")
    args = parser.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.only if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {SCENARIOS}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    sizes = generate.Sizes.quick() if args.quick else generate.Sizes.full()
    reps = args.reps or (5 if args.quick else 20)
    memory_gib = args.memory_gib or (0.25 if args.quick else 2.0)
    needed = set().union(*(NEEDS[s] for s in args.only))
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    log(f"benchmark {'quick' if args.quick else 'full'}: {', '.join(args.only)}; sizes {sizes}")

    data = generate.all_sets(Path(args.cache), sizes, needed, log=log)
    log(f"data ready ({time.time() - t0:.0f} s)")
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="dicomcloud-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"work directory {workdir}")

    results = {"meta": {"started": started, "machine": machine(), "mode": "quick" if args.quick else "full",
                        "sizes": generate.sizes_dict(sizes), "reps": reps, "scenarios": args.only,
                        "argv": sys.argv[1:]},
               "rows": [], "memory": {}, "peak_rss": {}, "probes": {}}
    servers = {}
    all_versions = {}
    ours_factory = functools.partial(OurServer, threads=args.ours_threads, workers=args.ours_workers)
    results["meta"]["ours_options"] = {"threads": args.ours_threads, "workers": args.ours_workers}
    try:
        main_scenarios = [s for s in args.only if s != "memory"]
        if main_scenarios:
            servers["ours"] = ours_factory(workdir / "ours").start()
            if not args.no_orthanc:
                servers["orthanc"] = OrthancServer(workdir / "orthanc").start()
            if not args.no_nginx and ({"wado", "wadouri"} & set(main_scenarios)):
                (workdir / "nginx-root").mkdir(exist_ok=True)
                servers["nginx"] = NginxServer(workdir / "nginx", workdir / "nginx-root").start()
            all_versions.update(versions(servers))
            for name, server in servers.items():
                log(f"{server.label} at {server.url} (pid {server.pid})")
            bench = Bench(servers, data, sizes, reps, log=log, stow_batch=args.stow_batch,
                          load_clients=args.load_clients, workdir=workdir,
                          stow_rounds=args.stow_rounds or (1 if args.quick else 3),
                          factories={"ours": ours_factory, "orthanc": OrthancServer})
            for scenario in main_scenarios:
                log(f"scenario {scenario}")
                run_guarded(bench, scenario, getattr(bench, scenario))
            results["rows"] = [row.to_dict() for row in bench.rows]
            results["meta"]["qido_expected"] = bench.extra.get("qido_expected")
            for name, server in servers.items():
                results["peak_rss"][name] = {"peak": server.sampler.peak, "end": server.rss(),
                                             "hwm_sum": None}
            for server in servers.values():
                server.stop()
            servers.clear()

        if "memory" in args.only:
            frames = int(memory_gib * 2**30 / (512 * 512 * 2))
            log(f"scenario memory: one {frames}-frame instance ({frames * 512 * 512 * 2 / 2**30:.2f} GiB) by STOW")
            candidates = [("ours", lambda: ours_factory(workdir / "mem-ours"))]
            if not args.no_orthanc:
                candidates.append(("orthanc", lambda: OrthancServer(workdir / "mem-orthanc")))
            for name, make in candidates:
                server = make().start()
                try:
                    all_versions.update(versions({name: server}))
                    server.sampler.interval = 0.02
                    outcome = memory_upload(server, server.url + server.dicomweb + "/studies", frames, log=log)
                    results["memory"][name] = outcome.to_dict()
                finally:
                    server.stop()
                    if not args.keep:
                        shutil.rmtree(server.folder, ignore_errors=True)
        results["probes"] = fsync_probe(workdir / "probe")
    finally:
        for server in servers.values():
            server.stop()
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    results["meta"]["versions"] = all_versions
    results["meta"]["elapsed_s"] = time.time() - t0
    md_path, json_path = report.write(results, Path(args.out))
    print(report.markdown(results))
    log(f"results: {md_path} and {json_path} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
