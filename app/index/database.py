"""Engine creation for the index database: SQLite (default), PostgreSQL, MS SQL / Azure SQL."""
from __future__ import annotations

import urllib.parse
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError

from app.errors import ConfigurationError


def database_url(settings) -> str:
    """The SQLAlchemy URL for ``app:PacsDataArchieve``; an ODBC connection string becomes mssql+pyodbc."""
    value = settings.expand(settings.database_url)
    if "://" not in value and "=" in value and ";" in value:
        # DICOMcloud's MS SQL connection strings ("Server=...;Database=...;") are ODBC/ADO strings.
        odbc = value if "driver=" in value.lower() else "Driver={ODBC Driver 18 for SQL Server};" + value
        return "mssql+pyodbc:///?odbc_connect=" + urllib.parse.quote_plus(odbc)
    return value


def dialect_name(url: str) -> str:
    return make_url(url).get_backend_name()


def create_index_engine(settings) -> Engine:
    url = database_url(settings)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(
            [f"app:PacsDataArchieve: not a database URL or connection string: {exc}"]) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=10)
    if backend == "mssql":
        return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=10,
                             fast_executemany=True)
    raise ConfigurationError([f"app:PacsDataArchieve: unsupported database {backend!r} "
                              "(use sqlite, postgresql or mssql)"])


def _sqlite_engine(parsed) -> Engine:
    database = parsed.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        # pysqlite's own transaction handling is replaced by explicit BEGIN IMMEDIATE (below), so
        # two writers never deadlock on a read lock upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE" if connection.info.get("write") else "BEGIN")

    return engine


class write_transaction:
    """``with write_transaction(engine) as conn:`` a transaction that will write.

    On SQLite it starts with BEGIN IMMEDIATE (the write lock is taken up front, so concurrent writers
    queue on busy_timeout instead of failing with "database is locked" on upgrade); elsewhere it is an
    ordinary transaction.
    """

    def __init__(self, engine: Engine):
        self.engine = engine

    def __enter__(self):
        self._conn = self.engine.connect()
        self._conn.info["write"] = True
        try:
            self._tx = self._conn.begin()
        except BaseException:
            self._conn.info.pop("write", None)
            self._conn.close()
            raise
        return self._conn

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self._tx.commit()
            else:
                self._tx.rollback()
        finally:
            self._conn.info.pop("write", None)
            self._conn.close()
        return False
