"""QIDO-RS queries are served by indexes: the query plans on SQLite and PostgreSQL.

SQLite: EXPLAIN QUERY PLAN of the real SELECT (built by app/index/query.py from a parsed query) must
search by index and never scan a table. PostgreSQL: EXPLAIN with sequential scans disabled must find an
index plan for each (on a nearly empty database the planner would rightly prefer a sequential scan, so
what is checked is that an index *can* serve the query). Run with ``-s`` to see the plans.
"""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from app.index import query as q
from app.index.schema import apply_schema
from app.qido import service

STUDY_UID = "1.2.840.99.1"

CASES = {
    # name: (level, query parameters, study UID in the path, index that must serve it)
    "PatientID exact": ("study", [("PatientID", "PID-1")], None, "ix_patient_patient_id"),
    "PatientName prefix": ("study", [("PatientName", "doe*")], None, "ix_patient_patient_name_match"),
    "StudyDate range + limit": ("study", [("StudyDate", "20200101-20201231"), ("limit", "25")], None,
                                "ix_study_study_date"),
    "/studies/{uid}/series": ("series", [], STUDY_UID, "ix_series_study_key"),
    "/series?PatientID": ("series", [("PatientID", "PID-1")], None, "ix_patient_patient_id"),
    "/instances?StudyDate range": ("instance", [("StudyDate", "20200101-20201231")], None,
                                   "ix_study_study_date"),
    "/instances?PatientName prefix": ("instance", [("PatientName", "doe*")], None,
                                      "ix_patient_patient_name_match"),
    "/studies/{uid}/instances": ("instance", [], STUDY_UID, "ix_instance_series_key"),
    "ModalitiesInStudy": ("study", [("ModalitiesInStudy", "MR,CT")], None, "ix_series_modality"),
    "ScheduledProcedureStepID": ("series", [("RequestAttributesSequence.ScheduledProcedureStepID", "S1")],
                                 None, "ix_series_request_spsid"),
    "SOPInstanceUID": ("instance", [("SOPInstanceUID", "1.2.3")], None, "uq_instance_uid"),
    "StudyDate+StudyTime": ("study", [("StudyDate", "20200101"), ("StudyTime", "1000-1200")], None,
                            "ix_study_study_datetime"),
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    url = (f"sqlite:///{tmp_path / 'plans.sqlite3'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    engine = create_engine(url)
    apply_schema(engine)
    yield engine
    engine.dispose()


def _compiled(engine, statement):
    compiled = statement.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    if engine.dialect.name == "sqlite":
        return str(compiled), tuple(compiled.params[name] for name in compiled.positiontup)
    return str(compiled), compiled.params


def explain(engine, statement) -> list[str]:
    sql, params = _compiled(engine, statement)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
        conn.exec_driver_sql("SET enable_seqscan = off")
        return [row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql, params)]


def search_statement(engine, level, args, study_uid):
    query = service.parse_query(level, args, study_uid=study_uid)
    with engine.connect() as conn:
        return q.build_select(conn, q.Search(level=level, conditions=query.conditions, limit=query.limit + 1,
                                             offset=query.offset))


def _table_scans(engine, plan: list[str]) -> list[str]:
    if engine.dialect.name == "sqlite":
        # "SCAN t USING COVERING INDEX" reads an index, not the table; a bare "SCAN t" reads the table.
        return [line for line in plan if line.startswith("SCAN ") and "INDEX" not in line]
    return [line for line in plan if "Seq Scan" in line]


@pytest.mark.parametrize("name", CASES)
def test_search_is_served_by_an_index(engine, name):
    level, args, study_uid, index = CASES[name]
    plan = explain(engine, search_statement(engine, level, args, study_uid))
    print(f"\n[{engine.dialect.name}] {name}:\n    " + "\n    ".join(plan))
    assert not _table_scans(engine, plan), plan
    text = "\n".join(plan)
    expected = index
    if engine.dialect.name == "sqlite" and index.startswith("uq_"):
        expected = "sqlite_autoindex_instance_1"     # SQLite names the index of a UNIQUE constraint itself
    assert expected in text, plan


@pytest.mark.parametrize("level", ["study", "series"])
def test_representative_metadata_query_is_served_by_indexes(engine, level):
    plan = explain(engine, q.representative_select(level, [1, 2, 3]))
    print(f"\n[{engine.dialect.name}] representative instance per {level}:\n    " + "\n    ".join(plan))
    assert not _table_scans(engine, plan), plan
    assert "ix_instance_series_key" in "\n".join(plan)


def test_fuzzy_matching_reads_the_name_index_not_the_tables(engine):
    """Fuzzy matching is a substring search: it reads all of ix_patient_patient_name_match (documented)."""
    fuzzy = [("PatientName", "joh"), ("fuzzymatching", "true")]
    plan = explain(engine, search_statement(engine, "study", fuzzy, None))
    print(f"\n[{engine.dialect.name}] fuzzy PatientName:\n    " + "\n    ".join(plan))
    if engine.dialect.name == "sqlite":
        assert not _table_scans(engine, plan), plan


def test_date_range_with_limit_reads_the_date_index_in_order(engine):
    """No sort of every study in the range: the index order is the result order, so LIMIT stops early."""
    plan = explain(engine, search_statement(engine, "study", [("StudyDate", "20200101-20201231"),
                                                              ("limit", "25")], None))
    text = "\n".join(plan)
    if engine.dialect.name == "sqlite":
        assert "USE TEMP B-TREE FOR ORDER BY" not in text, plan
    else:
        assert "Sort" not in text, plan
