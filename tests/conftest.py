"""Fixtures: an isolated app per test from the factory (SQLite + a temp folder), optional PostgreSQL."""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app

POSTGRES_URL = os.environ.get("DICOMCLOUD_TEST_POSTGRES_URL")


@pytest.fixture
def make_app(tmp_path):
    """Build apps on SQLite + App_Data under tmp_path; keyword arguments are setting overrides."""
    created = []

    def factory(**overrides):
        settings = {
            "app:PacsStorageConnection": str(tmp_path / "App_Data" / "Storage"),
            "app:PacsDataArchieve": f"sqlite:///{tmp_path / 'App_Data' / 'pacs.sqlite3'}",
            "app:tempDirectory": str(tmp_path / "App_Data" / "tmp"),
        }
        settings.update(overrides)
        app = create_app(None, overrides=settings, environ={})
        app.config["TESTING"] = True
        created.append(app)
        return app

    yield factory
    for app in created:
        app.extensions["dicomcloud"].engine.dispose()


@pytest.fixture
def source_dir(tmp_path):
    """A folder for files handed to a blob store (as the STOW spool would)."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@contextmanager
def scratch_postgres_database(prefix: str = "t_"):
    """A fresh, empty PostgreSQL database (URL), dropped afterwards; skips without
    DICOMCLOUD_TEST_POSTGRES_URL. For fixtures of any scope."""
    if not POSTGRES_URL:
        pytest.skip("DICOMCLOUD_TEST_POSTGRES_URL is not set (scripts/test starts a throwaway cluster)")
    name = prefix + uuid.uuid4().hex[:12]
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database for one test (skipped without DICOMCLOUD_TEST_POSTGRES_URL)."""
    with scratch_postgres_database() as url:
        yield url
