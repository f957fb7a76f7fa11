"""QIDO-RS searches as SQLAlchemy Core: one parameterised SELECT per search, plus at most one batched
query for the stored metadata of one representative instance per result (study/series level).

Callers (app/qido/service.py) describe a search with the plain structures below, naming attributes by
DICOM keyword; this module is where a keyword becomes a column. Every value is a bound parameter; LIKE
patterns escape ``%``, ``_``, ``[`` and the escape character itself. A literal prefix of a wildcard
pattern also becomes a range (``col >= 'ABC' AND col < 'ABD'``), which is served from an
ordinary index on SQLite (which only uses an index for LIKE under case_sensitive_like); PostgreSQL and
MS SQL derive that range from ``LIKE 'ABC%'`` themselves (PostgreSQL: in a C-collated database).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, case, exists, false, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ColumnElement

from app.index import tables as t

STUDY, SERIES, INSTANCE = "study", "series", "instance"


# --- what a search is made of ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Equals:
    """Single value (PS3.4 C.2.2.2.1) or list of values (C.2.2.2.2): the column equals one of them."""
    values: tuple


@dataclass(frozen=True)
class Wildcard:
    """C.2.2.2.4: ``*`` any run of characters, ``?`` any single character; everything else literal."""
    pattern: str


@dataclass(frozen=True)
class Range:
    """C.2.2.2.5: inclusive bounds of normalised date/time text; None is an open end."""
    low: str | None
    high: str | None


@dataclass(frozen=True)
class NameEquals:
    """Single value matching of a folded person name (also matches the same name with trailing empty
    components, or as the first component group of a multi-group name)."""
    value: str


@dataclass(frozen=True)
class NameWildcard:
    """Wildcard matching of a folded person name."""
    pattern: str


@dataclass(frozen=True)
class FuzzyName:
    """Fuzzy semantic matching of person names (PS3.18 8.3.4.1): every token is the start of a name
    component in some component group."""
    tokens: tuple


@dataclass(frozen=True)
class ZonedRange:
    """Combined StudyDate/StudyTime range given in a timezone (PS3.18 8.3.4.6): bounds are local to
    ``offset_minutes``; each stored study is compared in its own TimezoneOffsetFromUTC."""
    low: str | None
    high: str | None
    offset_minutes: int


@dataclass(frozen=True)
class Condition:
    keyword: str          # a key of MATCH_COLUMNS / SEQUENCE_COLUMNS, or ModalitiesInStudy
    match: object


@dataclass
class Search:
    level: str                                  # study | series | instance
    conditions: list = field(default_factory=list)
    limit: int = 100
    offset: int = 0
    with_metadata: bool = False                 # instance level: load metadata_json in the same SELECT


# --- keywords -> columns ---------------------------------------------------------------------------------

_P, _ST, _SE, _I, _RA = t.patient.c, t.study.c, t.series.c, t.instance.c, t.series_request_attributes.c

MATCH_COLUMNS = {
    "PatientName": _P.patient_name_match,
    "PatientID": _P.patient_id,
    "PatientBirthDate": _P.patient_birth_date,
    "StudyInstanceUID": _ST.study_instance_uid,
    "StudyDate": _ST.study_date,
    "StudyTime": _ST.study_time,
    "StudyDateTime": _ST.study_datetime,
    "AccessionNumber": _ST.accession_number,
    "StudyID": _ST.study_id,
    "ReferringPhysicianName": _ST.referring_physician_name_match,
    "SeriesInstanceUID": _SE.series_instance_uid,
    "Modality": _SE.modality,
    "SeriesNumber": _SE.series_number,
    "PerformedProcedureStepStartDate": _SE.performed_procedure_step_start_date,
    "PerformedProcedureStepStartTime": _SE.performed_procedure_step_start_time,
    "SOPInstanceUID": _I.sop_instance_uid,
    "SOPClassUID": _I.sop_class_uid,
    "InstanceNumber": _I.instance_number,
}
SEQUENCE_COLUMNS = {
    "RequestAttributesSequence.ScheduledProcedureStepID": _RA.scheduled_procedure_step_id,
    "RequestAttributesSequence.RequestedProcedureID": _RA.requested_procedure_id,
}
MODALITIES_IN_STUDY = "ModalitiesInStudy"
NAME_KEYWORDS = {"PatientName", "ReferringPhysicianName"}

_PATIENT_RETURN = {
    "PatientName": _P.patient_name, "PatientID": _P.patient_id, "IssuerOfPatientID": _P.issuer_of_patient_id,
    "PatientBirthDate": _P.patient_birth_date, "PatientSex": _P.patient_sex,
}
_STUDY_RETURN = {
    "StudyInstanceUID": _ST.study_instance_uid, "StudyDate": _ST.study_date, "StudyTime": _ST.study_time,
    "AccessionNumber": _ST.accession_number, "StudyID": _ST.study_id,
    "StudyDescription": _ST.study_description, "ReferringPhysicianName": _ST.referring_physician_name,
    "TimezoneOffsetFromUTC": _ST.timezone_offset_from_utc, "ModalitiesInStudy": _ST.modalities_in_study,
    "NumberOfStudyRelatedSeries": _ST.number_of_series,
    "NumberOfStudyRelatedInstances": _ST.number_of_instances,
}
_SERIES_RETURN = {
    "SeriesInstanceUID": _SE.series_instance_uid, "Modality": _SE.modality, "SeriesNumber": _SE.series_number,
    "SeriesDescription": _SE.series_description, "SeriesDate": _SE.series_date, "SeriesTime": _SE.series_time,
    "BodyPartExamined": _SE.body_part_examined, "Laterality": _SE.laterality,
    "PerformedProcedureStepStartDate": _SE.performed_procedure_step_start_date,
    "PerformedProcedureStepStartTime": _SE.performed_procedure_step_start_time,
    "TimezoneOffsetFromUTC": _SE.timezone_offset_from_utc,
    "NumberOfSeriesRelatedInstances": _SE.number_of_instances,
}
_INSTANCE_RETURN = {
    "SOPInstanceUID": _I.sop_instance_uid, "SOPClassUID": _I.sop_class_uid,
    "InstanceNumber": _I.instance_number, "ContentDate": _I.content_date, "ContentTime": _I.content_time,
    "Rows": _I.rows, "Columns": _I.columns, "BitsAllocated": _I.bits_allocated,
    "NumberOfFrames": _I.number_of_frames,
}
# What the index can return at each level, by keyword (a lower level's value wins: the series'
# TimezoneOffsetFromUTC over the study's).
RETURN_COLUMNS = {
    STUDY: {**_PATIENT_RETURN, **_STUDY_RETURN},
    SERIES: {**_PATIENT_RETURN, **_STUDY_RETURN, **_SERIES_RETURN},
    INSTANCE: {**_PATIENT_RETURN, **_STUDY_RETURN, **_SERIES_RETURN, **_INSTANCE_RETURN},
}
RETURNABLE = {level: frozenset(columns) for level, columns in RETURN_COLUMNS.items()}

# Internal labels of a result row (never DICOM keywords).
STUDY_KEY, SERIES_KEY = "_study_key", "_series_key"
HAS_REQUEST_ATTRIBUTES, METADATA = "_has_request", "_metadata"


# --- matching --------------------------------------------------------------------------------------------

ESCAPE = "!"
_LIKE_SPECIAL = (ESCAPE, "%", "_", "[")


def _escape_like(text: str) -> str:
    for char in _LIKE_SPECIAL:
        text = text.replace(char, ESCAPE + char)
    return text


def like_pattern(dicom_pattern: str) -> str:
    """A DICOM wildcard pattern as a LIKE pattern with ESCAPE '!'."""
    return "".join("%" if c == "*" else "_" if c == "?" else _escape_like(c) for c in dicom_pattern)


def literal_prefix(dicom_pattern: str) -> str:
    """The characters before the first wildcard."""
    for index, char in enumerate(dicom_pattern):
        if char in "*?":
            return dicom_pattern[:index]
    return dicom_pattern


def _prefix_range(column, prefix: str) -> ColumnElement:
    """``column`` starts with ``prefix``, as a range an index can serve (binary collation order)."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(column >= prefix, column < upper)


def glob_pattern(dicom_pattern: str) -> str:
    """A DICOM wildcard pattern as an SQLite GLOB pattern (case-sensitive, ``[`` taken literally)."""
    return "".join("[[]" if c == "[" else c for c in dicom_pattern)


def _wildcard(column, pattern: str, dialect: str) -> ColumnElement:
    """SQLite: GLOB (case-sensitive, unlike its LIKE) behind a range on the literal prefix, which is exact
    under SQLite's binary collation and lets it use the index. Elsewhere: LIKE, from which PostgreSQL (in
    a C-collated database) and MS SQL derive the index range themselves; a hand-made range would be wrong
    under a linguistic collation, where 'DOE^J' need not sort between 'DOE^' and 'DOE_'."""
    prefix = literal_prefix(pattern)
    if dialect == "sqlite":
        glob = column.op("GLOB")(glob_pattern(pattern))
        return and_(_prefix_range(column, prefix), glob) if prefix else glob
    return column.like(like_pattern(pattern), escape=ESCAPE)


def _equals(column, values: tuple) -> ColumnElement:
    return column == values[0] if len(values) == 1 else column.in_(values)


def _range(column, low: str | None, high: str | None) -> ColumnElement:
    if low and low == high:
        return column == low          # a single date: what query planners estimate best
    terms = [column >= low] if low else [column > ""]        # open lower end: any non-empty value
    if high:
        terms.append(column <= high)
    return and_(*terms)


def _name_equals(column, value: str, dialect: str) -> ColumnElement:
    # "DOE^JOHN" is also "DOE^JOHN^^" as written by some modalities, and the alphabetic group of
    # "YAMADA^TAROU=山田^太郎".
    variants = tuple(value + "^" * n for n in range(5))
    return or_(column.in_(variants), _wildcard(column, value + "=*", dialect))


def _name_wildcard(column, pattern: str, dialect: str) -> ColumnElement:
    condition = _wildcard(column, pattern, dialect)
    if not pattern.isascii():
        # An ideographic or phonetic pattern is matched against the later component groups too.
        condition = or_(condition, column.like("%=" + like_pattern(pattern), escape=ESCAPE))
    return condition


def _fuzzy_name(column, tokens: tuple) -> ColumnElement:
    terms = []
    for token in tokens:
        escaped = _escape_like(token)
        terms.append(or_(column.like(escaped + "%", escape=ESCAPE),
                         *(column.like(f"%{separator}{escaped}%", escape=ESCAPE)
                           for separator in ("^", " ", "=", "-"))))
    return and_(*terms)


def _parse_offset(text: str) -> int | None:
    text = (text or "").strip()
    if len(text) != 5 or text[0] not in "+-" or not text[1:].isdigit():
        return None
    minutes = int(text[1:3]) * 60 + int(text[3:])
    return minutes if text[0] == "+" else -minutes


def _shift(value: str | None, minutes: int) -> str | None:
    if not value or not minutes:
        return value
    try:
        moment = datetime.strptime(value, "%Y%m%d%H%M%S.%f") + timedelta(minutes=minutes)
    except (ValueError, OverflowError):      # at the ends of the calendar: the bound stays open there
        return value
    return moment.strftime("%Y%m%d%H%M%S.%f")


def _zoned_range(conn, match: ZonedRange) -> ColumnElement:
    """One range per timezone offset present in the data.

    A study stored with offset R at local time L happened at UTC L - R; the query's bounds B at offset Q
    are UTC B - Q; so L must lie within B + (R - Q). Studies without an offset are taken to be in the
    query's timezone. The offsets come from the (small) set of distinct values in the index.
    """
    tz, column = _ST.timezone_offset_from_utc, _ST.study_datetime
    offsets = conn.execute(select(tz).distinct()).scalars().all()
    branches, unzoned = [], []
    for text in offsets:
        stored = _parse_offset(text)
        if stored is None:
            unzoned.append(text)
            continue
        delta = stored - match.offset_minutes
        branches.append(and_(tz == text, _range(column, _shift(match.low, delta), _shift(match.high, delta))))
    if unzoned:
        branches.append(and_(tz.in_(unzoned), _range(column, match.low, match.high)))
    return or_(*branches) if branches else false()


def _condition(conn, column, match) -> ColumnElement:
    dialect = conn.dialect.name
    if isinstance(match, Equals):
        return _equals(column, match.values)
    if isinstance(match, Wildcard):
        return _wildcard(column, match.pattern, dialect)
    if isinstance(match, Range):
        return _range(column, match.low, match.high)
    if isinstance(match, NameEquals):
        return _name_equals(column, match.value, dialect)
    if isinstance(match, NameWildcard):
        return _name_wildcard(column, match.pattern, dialect)
    if isinstance(match, FuzzyName):
        return _fuzzy_name(column, match.tokens)
    if isinstance(match, ZonedRange):
        return _zoned_range(conn, match)
    raise TypeError(f"unknown match {match!r}")


_TABLE_OF = {
    **{keyword: "patient" for keyword in ("PatientName", "PatientID", "PatientBirthDate")},
    **{keyword: "study" for keyword in ("StudyInstanceUID", "StudyDate", "StudyTime", "StudyDateTime",
                                        "AccessionNumber", "StudyID", "ReferringPhysicianName",
                                        MODALITIES_IN_STUDY)},
    **{keyword: "series" for keyword in ("SeriesInstanceUID", "Modality", "SeriesNumber",
                                         "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
                                         *SEQUENCE_COLUMNS)},
    **{keyword: "instance" for keyword in ("SOPInstanceUID", "SOPClassUID", "InstanceNumber")},
}
_CHAIN = ("instance", "series", "study", "patient")
# (table, its key, the column of the table one level down that refers to it)
_PARENT_LINK = {
    "series": (_SE.series_key, _I.series_key),
    "study": (_ST.study_key, _SE.study_key),
    "patient": (t.patient.c.patient_key, _ST.patient_key),
}


def _clauses_by_table(conn, conditions: list) -> dict[str, list[ColumnElement]]:
    by_table: dict[str, list] = {name: [] for name in _CHAIN}
    sequence = []
    for condition in conditions:
        table = _TABLE_OF[condition.keyword]
        if condition.keyword in SEQUENCE_COLUMNS:
            sequence.append(condition)
        elif condition.keyword == MODALITIES_IN_STUDY:
            # C.2.2.2: a study matches when any of its series has one of the modalities. IN (subquery)
            # rather than EXISTS, so SQLite too starts from ix_series_modality instead of scanning study.
            other = t.series.alias("modality_series")
            by_table[table].append(_ST.study_key.in_(select(other.c.study_key).where(
                _condition(conn, other.c.modality, condition.match))))
        else:
            by_table[table].append(_condition(conn, MATCH_COLUMNS[condition.keyword], condition.match))
    if sequence:
        # C.2.2.2.6: every sequence key must match within one and the same item.
        by_table["series"].append(_SE.series_key.in_(select(_RA.series_key).where(
            *(_condition(conn, SEQUENCE_COLUMNS[c.keyword], c.match) for c in sequence))))
    return by_table


def _where(conn, level: str, conditions: list) -> list[ColumnElement]:
    """The WHERE clauses of a search at ``level``.

    Keys of the searched level's table apply directly; keys of the levels above become nested
    ``fk IN (SELECT key FROM parent WHERE ...)`` semi-joins, so every database (SQLite's planner without
    statistics too) starts from the index of the matched column rather than scanning the searched table
    in key order.
    """
    by_table = _clauses_by_table(conn, conditions)
    searched = {STUDY: "study", SERIES: "series", INSTANCE: "instance"}[level]
    chain = _CHAIN[_CHAIN.index(searched):]
    clauses: list = list(by_table[searched])
    # Build the semi-join from the top (patient) down to the level just above the searched one.
    inner = None
    for table_name in reversed(chain[1:]):
        key, _ = _PARENT_LINK[table_name]
        terms = list(by_table[table_name])
        if inner is not None:
            terms.append(inner)
        if not terms:
            inner = None
            continue
        _, child_fk = _PARENT_LINK[table_name]
        inner = child_fk.in_(select(key).where(*terms).correlate(None))
    if inner is not None:
        clauses.append(inner)
    return clauses


# --- the SELECTs -----------------------------------------------------------------------------------------

def build_select(conn, search: Search):
    """The search as one SELECT (``conn`` is only read for a ZonedRange's distinct offsets)."""
    columns = [column.label(keyword) for keyword, column in RETURN_COLUMNS[search.level].items()]
    columns.append(_ST.study_key.label(STUDY_KEY))
    source = t.study.join(t.patient, t.patient.c.patient_key == _ST.patient_key)
    order = _ST.study_key
    if search.level in (SERIES, INSTANCE):
        source = t.series.join(t.study, _ST.study_key == _SE.study_key).join(
            t.patient, t.patient.c.patient_key == _ST.patient_key)
        columns.append(_SE.series_key.label(SERIES_KEY))
        order = _SE.series_key
    if search.level == SERIES:
        # CASE WHEN EXISTS: T-SQL allows no bare EXISTS in a select list.
        columns.append(case((exists().where(_RA.series_key == _SE.series_key), 1), else_=0)
                       .label(HAS_REQUEST_ATTRIBUTES))
    if search.level == INSTANCE:
        source = (t.instance.join(t.series, _SE.series_key == _I.series_key)
                  .join(t.study, _ST.study_key == _SE.study_key)
                  .join(t.patient, t.patient.c.patient_key == _ST.patient_key))
        order = _I.instance_key
        if search.with_metadata:
            columns.append(_I.metadata_json.label(METADATA))
    statement = select(*columns).select_from(source)
    for clause in _where(conn, search.level, search.conditions):
        statement = statement.where(clause)
    orders = [order]
    if search.level == STUDY and any(c.keyword == "StudyDate" and not isinstance(c.match, ZonedRange)
                                     for c in search.conditions):
        # ix_study_study_date is (study_date, study_key): read in that order, a date range with a limit
        # stops after `limit` rows instead of sorting every study of the range (10x the studies must
        # not mean 10x the time). Still a total, stable order, so pages never overlap or skip.
        orders = [_ST.study_date, order]
    return statement.order_by(*orders).limit(search.limit).offset(search.offset)


def search(engine: Engine, search: Search) -> list[dict]:
    """The rows of one search page, each a dict keyed by keyword (plus the internal labels above)."""
    with engine.connect() as conn:
        result = conn.execute(build_select(conn, search))
        keys = list(result.keys())
        return [dict(zip(keys, row)) for row in result]


def _first_instance_of(series_key) -> ColumnElement:
    """The representative instance of a series: the first by InstanceNumber, then by key (an index scan
    of ix_instance_series_key that stops at its first entry)."""
    first = t.instance.alias("first_instance")
    return (select(first.c.instance_key).where(first.c.series_key == series_key)
            .order_by(first.c.instance_number, first.c.instance_key).limit(1).scalar_subquery())


def representative_select(level: str, keys: list[int]):
    """One SELECT of (key, metadata_json) of one representative instance per study or series key."""
    if level == STUDY:
        first_series = t.series.alias("first_series")
        series_key = (select(first_series.c.series_key).where(first_series.c.study_key == _ST.study_key)
                      .order_by(first_series.c.series_key).limit(1).scalar_subquery())
        source = t.study.join(t.series, _SE.series_key == series_key).join(
            t.instance, _I.instance_key == _first_instance_of(_SE.series_key))
        return select(_ST.study_key.label("key"), _I.metadata_json).select_from(source).where(
            _ST.study_key.in_(keys))
    return (select(_SE.series_key.label("key"), _I.metadata_json)
            .select_from(t.series.join(t.instance, _I.instance_key == _first_instance_of(_SE.series_key)))
            .where(_SE.series_key.in_(keys)))


def representative_metadata(engine: Engine, level: str, keys: list[int]) -> dict[int, str]:
    """{study or series key: stored DICOM JSON of its representative instance}, in one query."""
    if not keys:
        return {}
    with engine.connect() as conn:
        return {row.key: row.metadata_json for row in conn.execute(representative_select(level, keys))}


__all__ = ["Equals", "Wildcard", "Range", "NameEquals", "NameWildcard", "FuzzyName", "ZonedRange",
           "Condition", "Search", "search", "build_select", "representative_metadata",
           "representative_select", "MATCH_COLUMNS", "SEQUENCE_COLUMNS", "RETURNABLE"]
