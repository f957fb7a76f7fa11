"""Command line: ``python -m app serve|initdb``."""
from __future__ import annotations

import argparse
import logging
import os
import sys


def _load(config):
    from app import default_config_path
    from app.config import load_settings
    return load_settings(config if config else default_config_path())


def _waitress_options(args) -> dict:
    # waitress receives a whole request body before the app runs: bodies up to 8 MiB (a STOW of a few CT
    # slices) stay in memory, larger ones go to a temporary file (written and read back once more);
    # 8 MiB x waitress's 100 connections bounds that memory. Sockets are read in 256 KiB pieces (the
    # default of 8 KiB costs a Python call per 8 KiB of every upload).
    return dict(threads=args.threads, ident="DICOMcloud", inbuf_overflow=1 << 23, recv_bytes=1 << 18,
                max_request_body_size=1 << 40, channel_timeout=300)


def default_workers() -> int:
    """$DICOMCLOUD_WORKERS, else one worker process per CPU core this process may use (at most 8), or 1
    where there is no fork() (Windows: IIS or App Service run the processes there)."""
    configured = os.environ.get("DICOMCLOUD_WORKERS", "").strip()
    if configured:
        if not configured.isdigit():
            from app.errors import ConfigurationError
            raise ConfigurationError([f"DICOMCLOUD_WORKERS must be a whole number, not {configured!r}"])
        return max(1, int(configured))
    if not hasattr(os, "fork"):
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def cmd_serve(args) -> int:
    import waitress

    from app import create_app
    config = args.config if args.config else None
    workers = args.workers if args.workers is not None else default_workers()
    app = create_app(config)               # settings and schema checked (and SQLite created) once, up front
    # waitress receives each request body completely before calling the app, spooling large bodies to a
    # temporary file: put that file in app:tempDirectory (beside the storage), not in the system's /tmp.
    import tempfile
    tempfile.tempdir = str(app.extensions["dicomcloud"].temp_dir)
    if workers > 1 and not hasattr(os, "fork"):
        print("--workers > 1 needs fork (Linux/macOS); serving with one process", file=sys.stderr)
        workers = 1
    print(f"DICOMcloud serving on http://{args.host}:{args.port}/  (DICOMweb root /api, docs /swagger; "
          f"{workers} worker process{'es' if workers > 1 else ''})", flush=True)
    if workers == 1:
        waitress.serve(app, host=args.host, port=args.port, **_waitress_options(args))
        return 0
    app.extensions["dicomcloud"].engine.dispose()    # no pooled connection may cross fork()
    return _serve_prefork(args, workers, config)


def _serve_prefork(args, workers: int, config) -> int:
    """Several waitress processes accepting on one listening socket.

    Python runs one thread of a process at a time, so on a machine with several cores concurrent STOW
    and rendering scale with processes, not threads. The workers share nothing but the socket, the
    index database and the blob store, exactly like stateless web workers behind IIS or App Service.
    """
    import signal
    import socket

    import waitress

    from app import create_app
    listener = socket.create_server((args.host, args.port), backlog=1024)
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:                               # a worker: its own app, engine and connections
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            try:
                # The parent applied and checked the schema already; a worker only connects.
                waitress.serve(create_app(config, upgrade_schema=False), sockets=[listener],
                               **_waitress_options(args))
            finally:
                os._exit(0)
        children.append(pid)
    listener.close()

    def stop(signum, _frame):
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    for child in children:
        while True:
            try:
                _, code = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        if code and not status:
            status = 1
            stop(signal.SIGTERM, None)     # a worker died: stop the others; the supervisor restarts
    return status


def cmd_initdb(args) -> int:
    from app.index.database import create_index_engine
    from app.index.schema import apply_schema
    settings = _load(args.config)
    engine = create_index_engine(settings)
    version = apply_schema(engine)
    print(f"schema at version {version} on {engine.dialect.name}")
    return 0


def cmd_import(args) -> int:
    """Store files and folders (recursively) through the STOW-RS code, without HTTP."""
    from pathlib import Path

    from app import create_app
    from app.stow.service import StoreContext, StoreOutcome, store_files
    app = create_app(args.config if args.config else None)
    services = app.extensions["dicomcloud"]
    ctx = StoreContext.for_services(services, services.settings.wado_rs_url or "")

    def files():
        for name in args.paths:
            path = Path(name)
            if path.is_dir():
                yield from sorted(p for p in path.rglob("*") if p.is_file())
            else:
                yield path

    outcome = StoreOutcome()
    store_files(files(), ctx, outcome)
    for failure in outcome.failed:
        print("failed:", failure.get("00000902", {}).get("Value", ["?"])[0], file=sys.stderr)
    print(f"stored {len(outcome.referenced)}, failed {len(outcome.failed)}")
    return 0 if not outcome.failed else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description="DICOMcloud for Python")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the DICOMweb API with waitress")
    serve.add_argument("--config", default=None, help="path to web.config (default ./web.config)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--threads", type=int, default=8, help="threads per worker process")
    serve.add_argument("--workers", type=int, default=None,
                       help="worker processes sharing the port (default: $DICOMCLOUD_WORKERS, else one per "
                            "CPU core up to 8 on Linux/macOS, 1 on Windows)")
    serve.set_defaults(func=cmd_serve)
    initdb = sub.add_parser("initdb", help="apply the schema scripts to the configured database")
    initdb.add_argument("--config", default=None)
    initdb.set_defaults(func=cmd_initdb)
    importer = sub.add_parser("import", help="store DICOM files/folders through the STOW-RS code (no HTTP)")
    importer.add_argument("--config", default=None)
    importer.add_argument("paths", nargs="+", help="Part-10 files or folders (searched recursively)")
    importer.set_defaults(func=cmd_import)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from app.errors import ConfigurationError, SchemaVersionError
    try:
        return args.func(args)
    except ConfigurationError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except SchemaVersionError as exc:
        print(f"database schema: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
