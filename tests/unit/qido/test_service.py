"""QIDO-RS query parsing (app.qido.service) and its SQL building blocks (app.index.query), without HTTP."""
from __future__ import annotations

import pytest

from app.errors import BadRequest
from app.index import query as q
from app.qido import service


def parse(level="study", **params):
    return service.parse_query(level, list(params.items()))


def conditions(level="study", **params) -> dict:
    return {c.keyword: c.match for c in parse(level, **params).conditions}


def test_each_matching_type_becomes_its_structure():
    assert conditions(PatientID="X") == {"PatientID": q.Equals(("X",))}
    assert conditions(StudyInstanceUID="1.2,1.3\\1.2") == {"StudyInstanceUID": q.Equals(("1.2", "1.3"))}
    assert conditions(AccessionNumber="A*") == {"AccessionNumber": q.Wildcard("A*")}
    assert conditions(StudyDate="20200101-") == {"StudyDate": q.Range("20200101", None)}
    assert conditions(StudyDate="-20200101") == {"StudyDate": q.Range(None, "20200101")}
    assert conditions(StudyTime="1015") == {"StudyTime": q.Range("101500.000000", "101559.999999")}
    assert conditions(PatientName="müller^anna^^") == {"PatientName": q.NameEquals("MULLER^ANNA")}
    assert conditions(PatientName="d?e*") == {"PatientName": q.NameWildcard("D?E*")}
    assert conditions(PatientName="john doe", fuzzymatching="true") == {
        "PatientName": q.FuzzyName(("JOHN", "DOE"))}
    assert conditions(PatientName="", AccessionNumber="*") == {}                      # universal
    assert conditions("series", **{"00400275.00400009": "S1"}) == {
        "RequestAttributesSequence.ScheduledProcedureStepID": q.Equals(("S1",))}
    assert conditions(ModalitiesInStudy="CT,MR") == {"ModalitiesInStudy": q.Equals(("CT", "MR"))}


def test_study_date_and_time_combine_and_a_timezone_makes_them_zoned():
    assert conditions(StudyDate="20200101-20200102", StudyTime="1000-1100") == {
        "StudyDateTime": q.Range("20200101100000.000000", "20200102110059.999999")}
    assert conditions(StudyDate="20200101", TimezoneOffsetFromUTC="-0130") == {
        "StudyDateTime": q.ZonedRange("20200101000000.000000", "20200101235959.999999", -90)}


def test_includefield_defaults_and_limits():
    query = service.parse_query("series", [("includefield", "PatientAge,00280010"), ("includefield", "all"),
                                           ("limit", "5"), ("offset", "10")], maximum_results=100)
    assert "00101010" in query.return_tags and "00280010" in query.return_tags and query.include_all
    assert "0020000D" in query.return_tags and "00100010" in query.return_tags   # study attributes too
    assert (query.limit, query.offset, query.capped) == (5, 10, False)
    assert (parse().limit, parse().capped) == (1000, True)


@pytest.mark.parametrize("params", [
    {"StudyDate": "20240230"}, {"StudyDate": "00000101"}, {"SeriesNumber": "99999999999"},
    {"offset": "99999999999"}, {"StudyTime": "1200-1100"}, {"StudyInstanceUID": "1.2.3."},
    {"Modality": "CT,"}, {"fuzzymatching": "1"}, {"includefield": "Nope"}, {"NotAThing": "1"},
    {"PatientID.CodeValue": "x"},
])
def test_bad_values_are_bad_requests(params):
    with pytest.raises(BadRequest):
        parse("series", **params)


def test_unsupported_and_wrong_level_keys_are_warnings():
    query = parse(ImageType="X", SOPInstanceUID="1.2")
    assert query.conditions == [] and len(query.warnings) == 2


def test_like_and_glob_patterns_escape_what_is_literal():
    assert q.like_pattern("A%_!*B?[") == "A!%!_!!%B_!["
    assert q.literal_prefix("ABC*D?") == "ABC" and q.literal_prefix("*X") == ""
    assert q.glob_pattern("A[1]*") == "A[[]1]*"


@pytest.mark.parametrize("level, params", [
    ("study", [("PatientName", "doe*"), ("ModalitiesInStudy", "CT,MR"), ("StudyDate", "20200101-")]),
    ("series", [("RequestAttributesSequence.ScheduledProcedureStepID", "S1"), ("limit", "5"),
                ("offset", "5")]),
    ("instance", [("PatientID", "P"), ("AccessionNumber", "A?C*"), ("PatientName", "joh"),
                  ("fuzzymatching", "true")]),
])
def test_searches_compile_to_tsql_that_parses(level, params):
    """MS SQL cannot run here: the SELECTs must at least compile and parse as T-SQL (no bare EXISTS
    in a select list, TOP for LIMIT)."""
    import sqlglot
    from sqlalchemy.dialects import mssql

    class Conn:
        dialect = mssql.dialect()

    query = service.parse_query(level, params)
    search = q.Search(level, query.conditions, query.limit + 1, query.offset)
    for statement in (q.build_select(Conn(), search),
                      q.representative_select("study", [1, 2]), q.representative_select("series", [1])):
        sql = str(statement.compile(dialect=mssql.dialect(), compile_kwargs={"literal_binds": True}))
        assert "SELECT EXISTS" not in sql and ", EXISTS" not in sql
        assert sqlglot.parse(sql, read="tsql")
