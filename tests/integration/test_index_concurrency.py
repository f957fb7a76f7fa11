"""Concurrent STOW-RS requests on every index database: one study row, one row per series, exact counts."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from sqlalchemy import create_engine, func, select

from app.index import tables as t
from app.index.schema import apply_schema
from tests.helpers import REPO, make_instance, multipart, seq_values, stow_headers, value, write_web_config


@pytest.fixture(params=["sqlite", "postgresql"])
def database_app(request, make_app, tmp_path):
    if request.param == "sqlite":
        return make_app()
    url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    apply_schema(engine)
    engine.dispose()
    return make_app(**{"app:PacsDataArchieve": url})


def _run_threads(target, count):
    errors = []

    def guarded(n):
        try:
            target(n)
        except BaseException as exc:  # surfaced below: a thread's assertion must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_concurrent_uploads_of_one_study_converge(database_app):
    app = database_app
    statuses = []

    def upload(worker):
        client = app.test_client()
        for batch in range(3):
            parts = [make_instance("C", f"series{(worker + n) % 2}", f"w{worker}b{batch}n{n}",
                                   modality="CT" if (worker + n) % 2 else "MR") for n in range(3)]
            response = client.post("/api/studies", data=multipart(parts), headers=stow_headers())
            statuses.append(response.status_code)

    _run_threads(upload, 4)
    assert statuses == [200] * 12
    engine = app.extensions["dicomcloud"].engine
    with engine.connect() as conn:
        study = conn.execute(select(t.study)).one()
        assert (study.number_of_series, study.number_of_instances) == (2, 36)
        assert study.modalities_in_study == "CT\\MR"
        per_series = sorted(conn.execute(select(t.series.c.number_of_instances)).scalars())
        assert per_series == [18, 18]
        assert conn.execute(select(func.count()).select_from(t.instance)).scalar_one() == 36
        assert conn.execute(select(func.count()).select_from(t.patient)).scalar_one() == 1


def test_concurrent_copies_of_one_instance_store_once(database_app):
    app = database_app
    data = make_instance("R", "s", "same")
    results = []

    def upload(_):
        response = app.test_client().post("/api/studies", data=multipart([data]), headers=stow_headers())
        results.append((response.status_code, response.get_json()))

    _run_threads(upload, 6)
    assert sorted(code for code, _ in results) == [200] + [409] * 5
    for code, body in results:
        if code == 409:
            assert value(seq_values(body, "00081198")[0], "00081197") == 0x0111
    services = app.extensions["dicomcloud"]
    with services.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.instance)).scalar_one() == 1
        assert conn.execute(select(t.series.c.number_of_instances)).scalar_one() == 1
    assert len([p for p in services.storage.root.rglob("*.dcm")]) == 1


def test_initdb_command_prepares_a_server_database(postgres_url, tmp_path):
    config = write_web_config(tmp_path, {"app:PacsDataArchieve": postgres_url,
                                         "app:PacsStorageConnection": str(tmp_path / "blobs")})
    for _ in range(2):   # re-runnable
        done = subprocess.run([sys.executable, "-m", "app", "initdb", "--config", str(config)], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "schema at version 1 on postgresql" in done.stdout


def test_concurrent_batches_spanning_studies_converge(database_app):
    """Requests whose parts interleave two studies and four series: index batches lock the same rows in
    different orders, so deadlocks must be retried, never reported as failures."""
    app = database_app
    statuses = []

    def upload(worker):
        client = app.test_client()
        for batch in range(2):
            parts = [make_instance("XY"[(worker + n) % 2], f"series{n % 2}", f"w{worker}b{batch}n{n}")
                     for n in range(12)]
            response = client.post("/api/studies", data=multipart(parts), headers=stow_headers())
            statuses.append((response.status_code, response.get_json().get("00081198")))

    _run_threads(upload, 4)
    assert [code for code, _ in statuses] == [200] * 8, statuses
    with app.extensions["dicomcloud"].engine.connect() as conn:
        studies = conn.execute(select(t.study.c.number_of_series, t.study.c.number_of_instances)).all()
        assert sorted(tuple(row) for row in studies) == [(2, 48), (2, 48)]
        assert sorted(conn.execute(select(t.series.c.number_of_instances)).scalars()) == [24, 24, 24, 24]
