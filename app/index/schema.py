"""Creates and checks the index schema with the raw SQL scripts under ``sql/<dialect>/``.

Production databases are built from those scripts rather than ``metadata.create_all`` so a DBA can read,
review and run exactly the same DDL by hand (on MS SQL / Azure SQL the server's login often may not run
DDL). Each dialect folder holds numbered, re-runnable steps ``NNNN_name.sql`` and ``snapshot.sql`` (all
steps in one). Every step records its number in ``schema_version``; ``check_schema`` refuses to serve a
database whose version lies outside ``MIN_SUPPORTED_VERSION .. tables.SCHEMA_VERSION``.
"""
from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import func, inspect, select

from app.errors import SchemaVersionError
from app.index import tables
from app.index.database import write_transaction

SQL_ROOT = Path(__file__).resolve().parents[2] / "sql"
"""The repository's ``sql/`` folder: one sub-folder of scripts per dialect."""

MIN_SUPPORTED_VERSION = 1
"""Oldest schema this code still reads and writes correctly; the newest is ``tables.SCHEMA_VERSION``."""

DIALECTS = ("sqlite", "postgresql", "mssql")

_STEP_NAME = re.compile(r"^(\d{4})_[A-Za-z0-9_-]+\.sql$")
_GO_LINE = re.compile(r"^[ \t]*GO[ \t]*;?[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)

# Serialises concurrent apply_schema calls (two servers starting at once) for the length of a step's
# transaction. SQLite needs none: the step's BEGIN IMMEDIATE already takes the database's write lock.
_STEP_LOCK = {
    "postgresql": "SELECT pg_advisory_xact_lock(4410171301)",
    "mssql": "EXEC sp_getapplock @Resource = N'dicomcloud-index-schema', @LockMode = N'Exclusive', "
             "@LockOwner = N'Transaction'",
}

INITDB_HINT = "python -m app initdb --config PATH"


def script_dialect(engine) -> str:
    """The ``sql/`` sub-folder for an Engine or Connection: 'sqlite', 'postgresql' or 'mssql'."""
    name = engine.dialect.name
    if name not in DIALECTS:
        raise ValueError(f"no schema scripts for database {name!r} (have {', '.join(DIALECTS)})")
    return name


def steps(dialect: str) -> list[tuple[int, Path]]:
    """The numbered steps of ``dialect`` as (version, path), in order; duplicate numbers are an error."""
    found: dict[int, Path] = {}
    for path in (SQL_ROOT / dialect).glob("*.sql"):
        match = _STEP_NAME.match(path.name)
        if not match:
            continue
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two schema steps numbered {version}: {found[version].name}, {path.name}")
        found[version] = path
    return sorted(found.items())


def snapshot(dialect: str) -> Path:
    """The full-schema script of ``dialect`` (the result of all steps)."""
    return SQL_ROOT / dialect / "snapshot.sql"


def split_batches(sql_text: str, dialect: str) -> list[str]:
    """What to send to the driver one call at a time.

    MS SQL: the batches between ``GO`` lines (GO is a client-side separator the server never sees).
    SQLite / PostgreSQL: single statements split at ``;``, ignoring ``;`` inside quotes and comments,
    because neither driver reliably runs several statements in one call. Comment-only pieces are dropped.
    """
    if dialect == "mssql":
        pieces = _GO_LINE.split(sql_text)
    else:
        pieces = _split_statements(sql_text)
    return [piece.strip() for piece in pieces if _has_code(piece)]


def _scan(sql_text: str):
    """Yield (index, char, in_code) for every character; in_code is False inside comments and quotes.

    Knows ``--`` and ``/* */`` comments and '...' / "..." quotes with doubled-quote escapes; not
    PostgreSQL's E'...' or $$...$$ strings, which the scripts do not use.
    """
    i, n = 0, len(sql_text)
    while i < n:
        if sql_text.startswith("--", i):
            end = sql_text.find("\n", i)
            start, end = i, (n if end < 0 else end)
        elif sql_text.startswith("/*", i):
            end = sql_text.find("*/", i + 2)
            start, end = i, (n if end < 0 else end + 2)
        elif sql_text[i] in "'\"":
            quote, end = sql_text[i], i + 1
            while True:
                end = sql_text.find(quote, end)
                if end < 0:
                    end = n
                elif sql_text.startswith(quote * 2, end):  # '' inside '...' is an escaped quote
                    end += 2
                    continue
                else:
                    end += 1
                break
            yield i, sql_text[i], True  # the quote itself counts as code: the statement is not empty
            start = i + 1
        else:
            yield i, sql_text[i], True
            i += 1
            continue
        for j in range(start, end):
            yield j, sql_text[j], False
        i = end


def _split_statements(sql_text: str) -> list[str]:
    pieces, start = [], 0
    for i, ch, in_code in _scan(sql_text):
        if in_code and ch == ";":
            pieces.append(sql_text[start:i])
            start = i + 1
    pieces.append(sql_text[start:])
    return pieces


def _has_code(sql_text: str) -> bool:
    return any(in_code and not ch.isspace() and ch != ";" for _, ch, in_code in _scan(sql_text))


def run_script(engine, path: Path) -> None:
    """Run one script in a single transaction (steps are re-runnable, so running one again is harmless)."""
    dialect = script_dialect(engine)
    batches = split_batches(path.read_text(encoding="utf-8"), dialect)
    with write_transaction(engine) as conn:
        if dialect in _STEP_LOCK:
            conn.exec_driver_sql(_STEP_LOCK[dialect])
        for batch in batches:
            conn.exec_driver_sql(batch)


def apply_schema(engine) -> int:
    """Bring the database to ``tables.SCHEMA_VERSION`` (creating it when empty); return the new version.

    Runs, in order, each step numbered above the current version, each in its own transaction, so a
    failure leaves the database at the last complete step.
    """
    dialect = script_dialect(engine)
    current = current_version(engine) or 0
    if current > tables.SCHEMA_VERSION:
        raise SchemaVersionError(_newer_message(engine, current))
    for version, path in steps(dialect):
        if version > tables.SCHEMA_VERSION:
            raise RuntimeError(f"{path} is newer than tables.SCHEMA_VERSION={tables.SCHEMA_VERSION}: "
                               "bump SCHEMA_VERSION together with adding a step")
        if version > current:
            run_script(engine, path)
    return current_version(engine) or 0


def current_version(engine) -> int | None:
    """The highest version recorded in ``schema_version``; None without that table, 0 when it is empty."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(tables.schema_version.name):
            return None
        return conn.execute(select(func.max(tables.schema_version.c.version))).scalar() or 0


def check_schema(engine) -> int:
    """Return the schema version, or raise SchemaVersionError when this code cannot use the database."""
    current = current_version(engine)
    where = engine.url.render_as_string(hide_password=True)
    if current is None:
        raise SchemaVersionError(f"The index database {where} has no schema (no schema_version table). "
                                 f"Create it with: {INITDB_HINT}")
    if current < MIN_SUPPORTED_VERSION:
        raise SchemaVersionError(
            f"The index database {where} is at schema version {current}, older than this server supports "
            f"({MIN_SUPPORTED_VERSION}..{tables.SCHEMA_VERSION}). Upgrade it with: {INITDB_HINT}")
    if current > tables.SCHEMA_VERSION:
        raise SchemaVersionError(_newer_message(engine, current))
    return current


def _newer_message(engine, current: int) -> str:
    where = engine.url.render_as_string(hide_password=True)
    return (f"The index database {where} is at schema version {current}, newer than this server supports "
            f"({MIN_SUPPORTED_VERSION}..{tables.SCHEMA_VERSION}). Upgrade the server to a release that "
            "knows this schema (or point it at the right database).")
