"""Index lookups for WADO-RS and WADO-URI: the instances of a study, a series or one instance, in a
stable order.

Plain rows only (no pydicom, no Flask). The order is series (by series number, then insertion) and
instances (by instance number, then insertion), so the same request always streams the same bytes.
"""
from __future__ import annotations

from sqlalchemy import bindparam, case, literal_column, select
from sqlalchemy.engine import Engine

from app.index import tables as t

# What retrieval needs to stream or locate bytes; metadata_json is fetched only when asked for.
_LOCATION_COLUMNS = (
    t.study.c.study_instance_uid,
    t.series.c.series_instance_uid,
    t.instance.c.sop_instance_uid,
    t.instance.c.sop_class_uid,
    t.instance.c.instance_key,
    t.instance.c.instance_number,
    t.instance.c.rows,
    t.instance.c.columns,
    t.instance.c.bits_allocated,
    t.instance.c.number_of_frames,
    t.instance.c.transfer_syntax_uid,
    t.instance.c.blob_key,
    t.instance.c.blob_size,
    t.instance.c.pixel_data_offset,
    t.instance.c.pixel_data_length,
    t.instance.c.layout_json,
    t.instance.c.created_at,
)


# Each query shape is built once, its UIDs bound as parameters: SQLAlchemy then reuses the compiled
# statement (its cache key is memoised on the statement object) instead of building and keying a new
# Select on every request (0.20 -> 0.06 ms per lookup on SQLite).
_FROM = (t.instance.join(t.series, t.instance.c.series_key == t.series.c.series_key)
         .join(t.study, t.series.c.study_key == t.study.c.study_key))


def _nulls_last(column):
    """Sorts rows without a value after the others: CASE, because MS SQL takes no predicate (``x IS
    NULL``) as an ORDER BY expression; the same order as ``x IS NULL`` on SQLite and PostgreSQL."""
    return case((column.is_(None), literal_column("1")), else_=literal_column("0"))


_ORDER = (_nulls_last(t.series.c.series_number), t.series.c.series_number, t.series.c.series_key,
          _nulls_last(t.instance.c.instance_number), t.instance.c.instance_number, t.instance.c.instance_key)
_METADATA_COLUMNS = (t.instance.c.sop_instance_uid, t.instance.c.transfer_syntax_uid,
                     t.instance.c.metadata_json)


def _columns(with_metadata: bool) -> tuple:
    return _LOCATION_COLUMNS + ((t.instance.c.metadata_json,) if with_metadata else ())


def _select(columns, by_series: bool, by_sop: bool):
    """The instances of a study (``:study_uid``), optionally of one series (``:series_uid``) and one SOP
    Instance UID (``:sop_uid``), in the stable order."""
    query = (select(*columns).select_from(_FROM)
             .where(t.study.c.study_instance_uid == bindparam("study_uid")))
    if by_series:
        query = query.where(t.series.c.series_instance_uid == bindparam("series_uid"))
    if by_sop:
        query = query.where(t.instance.c.sop_instance_uid == bindparam("sop_uid"))
    return query.order_by(*_ORDER)


def _select_by_sop(with_metadata: bool):
    return (select(*_columns(with_metadata)).select_from(_FROM)
            .where(t.series.c.series_instance_uid == bindparam("series_uid"))
            .where(t.instance.c.sop_instance_uid == bindparam("sop_uid"))
            .order_by(t.instance.c.instance_key))


_SHAPES = [(by_series, by_sop) for by_series in (False, True) for by_sop in (False, True)]
# (series UID given, SOP Instance UID given, with metadata) -> statement
_INSTANCES = {(by_series, by_sop, with_metadata): _select(_columns(with_metadata), by_series, by_sop)
              for by_series, by_sop in _SHAPES for with_metadata in (False, True)}
# (series UID given, SOP Instance UID given) -> statement
_METADATA = {shape: _select(_METADATA_COLUMNS, *shape) for shape in _SHAPES}
# with metadata -> statement
_BY_SOP = {with_metadata: _select_by_sop(with_metadata) for with_metadata in (False, True)}


def _params(study_uid: str, series_uid: str | None, sop_uid: str | None) -> dict:
    params = {"study_uid": study_uid}
    if series_uid is not None:
        params["series_uid"] = series_uid
    if sop_uid is not None:
        params["sop_uid"] = sop_uid
    return params


def find_instances(engine: Engine, study_uid: str, series_uid: str | None = None,
                   sop_uid: str | None = None, *, with_metadata: bool = False) -> list:
    """Rows of the matching instances (empty list when nothing matches)."""
    statement = _INSTANCES[series_uid is not None, sop_uid is not None, bool(with_metadata)]
    with engine.connect() as conn:
        return list(conn.execute(statement, _params(study_uid, series_uid, sop_uid)))


def find_metadata(engine: Engine, study_uid: str, series_uid: str | None = None,
                  sop_uid: str | None = None) -> list:
    """(sop_instance_uid, transfer_syntax_uid, metadata_json) of the matching instances, in order."""
    statement = _METADATA[series_uid is not None, sop_uid is not None]
    with engine.connect() as conn:
        return list(conn.execute(statement, _params(study_uid, series_uid, sop_uid)))


def find_by_sop(engine: Engine, series_uid: str, sop_uid: str, *, with_metadata: bool = False) -> list:
    """Rows of an instance named by its series and SOP Instance UIDs, in whatever study it is stored (a
    presentation state may live in another study than the images it references)."""
    params = {"series_uid": series_uid, "sop_uid": sop_uid}
    with engine.connect() as conn:
        return list(conn.execute(_BY_SOP[bool(with_metadata)], params))
