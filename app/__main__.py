"""Command line: ``python -m app serve|initdb``."""
from __future__ import annotations

import argparse
import logging
import sys


def _load(config):
    from app import default_config_path
    from app.config import load_settings
    return load_settings(config if config else default_config_path())


def cmd_serve(args) -> int:
    import waitress

    from app import create_app
    app = create_app(args.config if args.config else None)
    print(f"DICOMcloud serving on http://{args.host}:{args.port}/  (DICOMweb root /api, docs /swagger)",
          flush=True)
    waitress.serve(app, host=args.host, port=args.port, threads=args.threads, ident="DICOMcloud",
                   # STOW bodies are streamed by the app; let waitress hand them over in large buffers.
                   inbuf_overflow=1 << 20, max_request_body_size=1 << 40, channel_timeout=300)
    return 0


def cmd_initdb(args) -> int:
    from app.index.database import create_index_engine
    from app.index.schema import apply_schema
    settings = _load(args.config)
    engine = create_index_engine(settings)
    version = apply_schema(engine)
    print(f"schema at version {version} on {engine.dialect.name}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description="DICOMcloud for Python")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the DICOMweb API with waitress")
    serve.add_argument("--config", default=None, help="path to web.config (default ./web.config)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--threads", type=int, default=8)
    serve.set_defaults(func=cmd_serve)
    initdb = sub.add_parser("initdb", help="apply the schema scripts to the configured database")
    initdb.add_argument("--config", default=None)
    initdb.set_defaults(func=cmd_initdb)
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
