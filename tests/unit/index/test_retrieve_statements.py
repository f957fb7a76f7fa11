"""app.index.retrieve: every lookup shape is one statement built at import, its UIDs bound as parameters.

- each statement compiles, on SQLite, PostgreSQL and MS SQL, to the SQL the per-request builder made
  before (same columns, joins, filters and order), with the UIDs as bound parameters;
- a lookup executes the same statement object every time (SQLAlchemy reuses its compiled form), with
  the request's UIDs as parameters;
- on a database (SQLite here, PostgreSQL with DICOMCLOUD_TEST_POSTGRES_URL) every shape returns the rows
  and order of the per-request query, including series and instances without a number.
"""
from __future__ import annotations

import itertools
import re

import pytest
from sqlalchemy import case, create_engine, event, literal_column, select
from sqlalchemy.dialects import mssql, postgresql, sqlite

from app.index import retrieve
from app.index import tables as t
from app.index.schema import apply_schema
from tests.helpers import make_dataset, multipart, stow_headers, to_bytes, uid

DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect(), "mssql": mssql.dialect()}
SHAPES = list(itertools.product((False, True), (False, True)))       # (series UID given, SOP UID given)


# ---- the per-request builder as it was (the reference) -------------------------------------------------

def reference_select(columns, study_uid, series_uid, sop_uid, nulls_last=lambda column: column.is_(None)):
    query = (select(*columns)
             .select_from(t.instance.join(t.series, t.instance.c.series_key == t.series.c.series_key)
                          .join(t.study, t.series.c.study_key == t.study.c.study_key))
             .where(t.study.c.study_instance_uid == study_uid))
    if series_uid is not None:
        query = query.where(t.series.c.series_instance_uid == series_uid)
    if sop_uid is not None:
        query = query.where(t.instance.c.sop_instance_uid == sop_uid)
    return query.order_by(nulls_last(t.series.c.series_number), t.series.c.series_number,
                          t.series.c.series_key, nulls_last(t.instance.c.instance_number),
                          t.instance.c.instance_number, t.instance.c.instance_key)


def case_nulls_last(column):
    return case((column.is_(None), literal_column("1")), else_=literal_column("0"))


def reference_by_sop(columns, series_uid, sop_uid):
    return (select(*columns)
            .select_from(t.instance.join(t.series, t.instance.c.series_key == t.series.c.series_key)
                         .join(t.study, t.series.c.study_key == t.study.c.study_key))
            .where(t.series.c.series_instance_uid == series_uid)
            .where(t.instance.c.sop_instance_uid == sop_uid)
            .order_by(t.instance.c.instance_key))


def location_columns(with_metadata):
    return retrieve._LOCATION_COLUMNS + ((t.instance.c.metadata_json,) if with_metadata else ())


METADATA_COLUMNS = (t.instance.c.sop_instance_uid, t.instance.c.transfer_syntax_uid,
                    t.instance.c.metadata_json)


def cases(study="1.2.3", series="1.2.3.4", sop="1.2.3.4.5", nulls_last=case_nulls_last):
    """(label, prebuilt statement, its parameters, the reference query, the public lookup as a function of
    the engine) for every shape; ``nulls_last``: how the reference sorts missing numbers last."""
    out = []
    for by_series, by_sop in SHAPES:
        args = (study, series if by_series else None, sop if by_sop else None)
        params = retrieve._params(*args)
        for with_metadata in (False, True):
            out.append((f"find_instances{by_series, by_sop, with_metadata}",
                        retrieve._INSTANCES[by_series, by_sop, with_metadata], params,
                        reference_select(location_columns(with_metadata), *args, nulls_last),
                        lambda engine, args=args, meta=with_metadata:
                        retrieve.find_instances(engine, *args, with_metadata=meta)))
        out.append((f"find_metadata{by_series, by_sop}", retrieve._METADATA[by_series, by_sop], params,
                    reference_select(METADATA_COLUMNS, *args, nulls_last),
                    lambda engine, args=args: retrieve.find_metadata(engine, *args)))
    for with_metadata in (False, True):
        out.append((f"find_by_sop({with_metadata})", retrieve._BY_SOP[with_metadata],
                    {"series_uid": series, "sop_uid": sop},
                    reference_by_sop(location_columns(with_metadata), series, sop),
                    lambda engine, meta=with_metadata: retrieve.find_by_sop(engine, series, sop,
                                                                            with_metadata=meta)))
    return out


def literal_sql(statement, dialect) -> str:
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_statements_compile_to_the_sql_of_the_per_request_builder(dialect):
    for label, statement, params, reference, _ in cases():
        compiled = statement.compile(dialect=DIALECTS[dialect])
        assert set(compiled.params) == set(params), label           # the UIDs are parameters
        assert literal_sql(statement.params(**params), DIALECTS[dialect]) == \
            literal_sql(reference, DIALECTS[dialect]), (dialect, label)


def test_order_by_is_valid_t_sql():
    """MS SQL takes no predicate as an ORDER BY expression: ``ORDER BY x IS NULL`` is a syntax error
    there (the per-request builder wrote it); missing numbers go last through CASE."""
    import sqlglot

    for label, statement, params, _, _ in cases():
        sql = literal_sql(statement.params(**params), mssql.dialect())
        order_by = sql.split("ORDER BY", 1)[1]
        assert "IS NULL" not in re.sub(r"CASE WHEN \(?[\w.]+ IS NULL\)? THEN 1 ELSE 0 END", "", order_by), \
            (label, order_by)
        assert sqlglot.parse(sql, read="tsql")


# ---- on a database --------------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def stored(request, make_app):
    """An app on SQLite or PostgreSQL holding one study: series with and without SeriesNumber, instances
    with and without InstanceNumber, stored out of order; (engine, study, [(series, sop), ...])."""
    overrides = {}
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        engine = create_engine(url)
        apply_schema(engine)
        engine.dispose()
        overrides["app:PacsDataArchieve"] = url
    app = make_app(**overrides)
    payloads, members = [], []
    for series, series_number in (("b", 2), ("none", None), ("a", 1)):
        for instance, instance_number in (("3", 3), ("x", None), ("1", 1)):
            ds = make_dataset("RETRIEVE", series, instance, SeriesNumber=series_number,
                              InstanceNumber=instance_number)
            for keyword in ("SeriesNumber", "InstanceNumber"):
                if ds.get(keyword) is None:
                    del ds[keyword]
            payloads.append(to_bytes(ds))
            members.append((ds.SeriesInstanceUID, ds.SOPInstanceUID))
    response = app.test_client().post("/api/studies", data=multipart(payloads), headers=stow_headers())
    assert response.status_code == 200, response.data
    return app.extensions["dicomcloud"].engine, uid("study", "RETRIEVE"), members


def test_every_shape_returns_the_rows_of_the_per_request_query(stored):
    engine, study, members = stored
    series, sop = members[4]
    # The reference sorts by "x IS NULL" as before (SQLite and PostgreSQL take it): the CASE orders alike.
    before = cases(study, series, sop, nulls_last=lambda column: column.is_(None))
    for label, _, _, reference, lookup in before:
        with engine.connect() as conn:
            expected = [tuple(row) for row in conn.execute(reference)]
        assert expected, label
        assert [tuple(row) for row in lookup(engine)] == expected, label
    # The order: series by number (none last), instances by number (none last).
    rows = retrieve.find_instances(engine, study)
    assert [(row.series_instance_uid, row.sop_instance_uid) for row in rows] == \
        [members[i] for i in (8, 6, 7, 2, 0, 1, 5, 3, 4)]


def test_lookups_execute_one_statement_per_shape_with_the_uids_as_parameters(stored):
    engine, study, members = stored
    executed = []

    @event.listens_for(engine, "before_execute")
    def record(conn, clauseelement, multiparams, params, execution_options):
        executed.append((clauseelement, multiparams, params))

    try:
        for series, sop in members[:3]:
            assert len(retrieve.find_instances(engine, study, series, sop)) == 1
    finally:
        event.remove(engine, "before_execute", record)
    statements = {id(statement) for statement, _, _ in executed}
    assert statements == {id(retrieve._INSTANCES[True, True, False])}
    assert [(multi or (params,))[0]["sop_uid"] for _, multi, params in executed] == \
        [sop for _, sop in members[:3]]
