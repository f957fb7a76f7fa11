"""The raw scripts in sql/<dialect>/ create exactly the schema of app/index/tables.py.

SQLite always, PostgreSQL when DICOMCLOUD_TEST_POSTGRES_URL is set: the steps are applied (twice, to prove
they are re-runnable) and the database, read back with ``sqlalchemy.inspect``, must equal tables.py; the
snapshot must give the same database as the chained steps. MS SQL cannot run here, so its scripts are
parsed with sqlglot and compared with tables.py compiled by SQLAlchemy's mssql dialect
(scripts/check_schema.py, run in-process).
"""
from __future__ import annotations

import datetime
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import sqlglot
from sqlalchemy import ForeignKeyConstraint, UniqueConstraint, create_engine, delete, insert, inspect, select
from sqlglot import exp

from app.config import load_settings
from app.errors import SchemaVersionError
from app.index import schema, tables
from app.index.database import create_index_engine

REPO = Path(__file__).resolve().parents[2]
NOW = datetime.datetime(2024, 1, 2, 3, 4, 5)


def _load_check_schema():
    spec = importlib.util.spec_from_file_location("check_schema", REPO / "scripts" / "check_schema.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_schema_script = _load_check_schema()


# --- fixtures --------------------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def new_engine(request, tmp_path):
    """Factory of engines, each on a new, empty database of the parametrized backend.

    PostgreSQL: one scratch database per test (conftest ``postgres_url``, skipped without
    DICOMCLOUD_TEST_POSTGRES_URL); the first engine uses its public schema, later ones a schema of their
    own through search_path, so one test can compare two databases.
    """
    engines = []
    base_url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None

    def make():
        if request.param == "sqlite" or not engines:
            url = f"sqlite:///{tmp_path / f'index{len(engines)}.sqlite3'}" if base_url is None else base_url
            engine = create_index_engine(load_settings(None, environ={}, overrides={"database_url": url}))
        else:
            name = f"scratch{len(engines)}"
            with engines[0].begin() as conn:
                conn.exec_driver_sql(f"CREATE SCHEMA {name}")
            engine = create_engine(base_url, connect_args={"options": f"-c search_path={name}"})
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


# --- comparing a live database with tables.py ------------------------------------------------------------

def expected_schema(dialect) -> dict:
    """tables.py as the inspector should report it on ``dialect`` (types compiled by that dialect)."""
    described = {}
    for table in tables.ALL_TABLES:
        described[table.name] = {
            "columns": [(c.name, c.type.compile(dialect=dialect), c.nullable) for c in table.columns],
            "primary key": [c.name for c in table.primary_key.columns],
            "unique": sorted((u.name, [c.name for c in u.columns])
                             for u in table.constraints if isinstance(u, UniqueConstraint)),
            "foreign keys": sorted(
                (fk.name, [c.name for c in fk.columns], fk.referred_table.name,
                 [e.column.name for e in fk.elements], (fk.ondelete or "").upper() or None)
                for fk in table.constraints if isinstance(fk, ForeignKeyConstraint)),
            "indexes": sorted((ix.name, [c.name for c in ix.columns], bool(ix.unique))
                              for ix in table.indexes),
        }
    return described


def reflected_schema(engine) -> dict:
    """The database as ``sqlalchemy.inspect`` sees it, in the shape of ``expected_schema``."""
    inspector = inspect(engine)
    described = {}
    for name in inspector.get_table_names():
        unique = sorted((u["name"], u["column_names"]) for u in inspector.get_unique_constraints(name))
        described[name] = {
            "columns": [(c["name"], c["type"].compile(dialect=engine.dialect), c["nullable"])
                        for c in inspector.get_columns(name)],
            "primary key": inspector.get_pk_constraint(name)["constrained_columns"],
            "unique": unique,
            "foreign keys": sorted(
                (fk["name"], fk["constrained_columns"], fk["referred_table"], fk["referred_columns"],
                 (fk["options"].get("ondelete") or "").upper() or None)
                for fk in inspector.get_foreign_keys(name)),
            # PostgreSQL also lists the index behind each unique constraint; those are compared above.
            "indexes": sorted((ix["name"], ix["column_names"], bool(ix["unique"]))
                              for ix in inspector.get_indexes(name)
                              if "duplicates_constraint" not in ix and ix["name"] not in dict(unique)),
        }
    return described


def assert_matches_tables(engine) -> None:
    expected, actual = expected_schema(engine.dialect), reflected_schema(engine)
    assert sorted(actual) == sorted(expected), "tables differ"
    for name in expected:
        for section in expected[name]:
            assert actual[name][section] == expected[name][section], f"{name}: {section} differ"


def recorded_versions(engine) -> list[tuple[int, str, type]]:
    with engine.connect() as conn:
        rows = conn.execute(select(tables.schema_version).order_by(tables.schema_version.c.version)).all()
    return [(row.version, row.description, type(row.applied_at)) for row in rows]


# --- the scripts on disk ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dialect", schema.DIALECTS)
def test_every_dialect_has_contiguous_steps_up_to_schema_version_and_a_snapshot(dialect):
    found = schema.steps(dialect)
    assert [version for version, _ in found] == list(range(1, tables.SCHEMA_VERSION + 1))
    for path in [p for _, p in found] + [schema.snapshot(dialect)]:
        assert path.read_text(encoding="utf-8").startswith("-- "), f"{path} lacks its header comment"


def test_split_batches_ignores_separators_in_quotes_and_comments():
    text = ("-- a header; with a semicolon\nCREATE TABLE a (x TEXT); /* b; */ INSERT INTO a VALUES ('x;y', "
            "'it''s;');\n-- trailing;\n;\nSELECT \"we;ird\" FROM a")
    assert schema.split_batches(text, "sqlite") == [
        "-- a header; with a semicolon\nCREATE TABLE a (x TEXT)",
        "/* b; */ INSERT INTO a VALUES ('x;y', 'it''s;')",
        'SELECT "we;ird" FROM a',
    ]
    tsql = "SELECT 1;\nSELECT 2\ngo\n  GO  \r\nSELECT 'GO'\n-- only a comment\nGO\n"
    assert schema.split_batches(tsql, "mssql") == ["SELECT 1;\nSELECT 2", "SELECT 'GO'\n-- only a comment"]


# --- SQLite and PostgreSQL, live --------------------------------------------------------------------------

def test_steps_create_the_tables_py_schema_and_can_run_again(new_engine):
    engine = new_engine()
    assert schema.current_version(engine) is None
    assert schema.apply_schema(engine) == tables.SCHEMA_VERSION
    assert_matches_tables(engine)

    dialect = schema.script_dialect(engine)
    for _, path in schema.steps(dialect):  # re-runnable: every step again, then the snapshot over them
        schema.run_script(engine, path)
    schema.run_script(engine, schema.snapshot(dialect))
    assert schema.apply_schema(engine) == tables.SCHEMA_VERSION

    assert_matches_tables(engine)
    assert [v for v, _, _ in recorded_versions(engine)] == list(range(1, tables.SCHEMA_VERSION + 1))
    assert all(kind is datetime.datetime for _, _, kind in recorded_versions(engine))


def test_snapshot_gives_the_same_database_as_the_chained_steps(new_engine):
    chained, snapshot = new_engine(), new_engine()
    schema.apply_schema(chained)
    assert schema.current_version(snapshot) is None  # really a second, empty database
    schema.run_script(snapshot, schema.snapshot(schema.script_dialect(snapshot)))

    assert reflected_schema(snapshot) == reflected_schema(chained)
    assert [v[:2] for v in recorded_versions(snapshot)] == [v[:2] for v in recorded_versions(chained)]
    assert schema.check_schema(snapshot) == tables.SCHEMA_VERSION


def test_keys_are_generated_never_reused_and_request_attributes_cascade(new_engine):
    engine = new_engine()
    schema.apply_schema(engine)
    with engine.begin() as conn:
        def add(table, **values):
            return conn.execute(insert(table).values(**values)).inserted_primary_key[0]

        first = add(tables.patient, identity_hash="a")
        second = add(tables.patient, identity_hash="b")
        assert second > first
        conn.execute(delete(tables.patient).where(tables.patient.c.patient_key == second))
        assert add(tables.patient, identity_hash="c") > second

        study = add(tables.study, patient_key=first, study_instance_uid="1.2", created_at=NOW, updated_at=NOW)
        series = add(tables.series, study_key=study, series_instance_uid="1.2.3", created_at=NOW,
                     updated_at=NOW)
        add(tables.series_request_attributes, series_key=series, requested_procedure_id="RP1")
        add(tables.instance, series_key=series, sop_instance_uid="1.2.3.4",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2", transfer_syntax_uid="1.2.840.10008.1.2.1",
            blob_key="k", blob_size=1, metadata_json="{}", created_at=NOW)

        conn.execute(delete(tables.instance))
        conn.execute(delete(tables.series))
        assert conn.execute(select(tables.series_request_attributes)).all() == []


def test_check_schema_accepts_only_the_supported_version_window(new_engine):
    engine = new_engine()
    with pytest.raises(SchemaVersionError, match="no schema.*python -m app initdb --config PATH"):
        schema.check_schema(engine)

    schema.apply_schema(engine)
    assert schema.check_schema(engine) == tables.SCHEMA_VERSION

    with engine.begin() as conn:
        conn.execute(insert(tables.schema_version).values(version=tables.SCHEMA_VERSION + 1,
                                                          description="from the future", applied_at=NOW))
    with pytest.raises(SchemaVersionError, match="newer than this server supports.*Upgrade the server"):
        schema.check_schema(engine)
    with pytest.raises(SchemaVersionError, match="newer"):
        schema.apply_schema(engine)

    with engine.begin() as conn:
        conn.execute(delete(tables.schema_version))
    with pytest.raises(SchemaVersionError, match="older than this server supports.*python -m app initdb"):
        schema.check_schema(engine)


# --- MS SQL, offline -------------------------------------------------------------------------------------

def test_every_mssql_batch_parses_as_tsql():
    paths = [p for _, p in schema.steps("mssql")] + [schema.snapshot("mssql")]
    for path in paths:
        batches = schema.split_batches(path.read_text(encoding="utf-8"), "mssql")
        assert len(batches) > 1, f"{path.name}: expected GO-separated batches"
        for batch in batches:
            statements = sqlglot.parse(batch, read="tsql")
            assert not any(isinstance(s, exp.Command) for s in statements), \
                f"{path.name}: sqlglot did not understand {batch[:80]!r}"


@pytest.mark.parametrize("dialect", ["mssql", "postgresql", "sqlite"])
def test_scripts_declare_what_tables_py_compiles_to(dialect):
    assert check_schema_script.check_dialect(dialect) == []


def test_mssql_check_reports_a_script_that_drifted_from_tables_py(tmp_path):
    source = (schema.SQL_ROOT / "mssql" / "0001_initial.sql").read_text(encoding="utf-8")
    drifted = (source.replace("study_datetime NVARCHAR(26) NOT NULL", "study_datetime VARCHAR(26) NULL")
               .replace("        ON DELETE CASCADE\n", "\n")
               .replace("IF OBJECT_ID(N'dbo.series', N'U') IS NULL\n", ""))
    path = tmp_path / "0001_initial.sql"
    path.write_text(drifted, encoding="utf-8")

    problems = check_schema_script.compare(check_schema_script.tables_model("mssql"),
                                           check_schema_script.script_model("mssql", [path]), "drifted")
    text = "\n".join(problems)
    assert "study columns study_datetime" in text
    assert "fk_series_request_series" in text
    assert "CREATE TABLE series is not guarded" in text
    assert len(problems) == 3, text


def test_check_schema_command_line_passes_on_the_repository():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "check_schema.py"), "--dialect", "mssql"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "agrees" in result.stdout
