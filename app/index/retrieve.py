"""Index lookups for WADO-RS and WADO-URI: the instances of a study, a series or one instance, in a
stable order.

Plain rows only (no pydicom, no Flask). The order is series (by series number, then insertion) and
instances (by instance number, then insertion), so the same request always streams the same bytes.
"""
from __future__ import annotations

from sqlalchemy import select
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


def _select(columns, study_uid: str, series_uid: str | None, sop_uid: str | None):
    query = (select(*columns)
             .select_from(t.instance.join(t.series, t.instance.c.series_key == t.series.c.series_key)
                          .join(t.study, t.series.c.study_key == t.study.c.study_key))
             .where(t.study.c.study_instance_uid == study_uid))
    if series_uid is not None:
        query = query.where(t.series.c.series_instance_uid == series_uid)
    if sop_uid is not None:
        query = query.where(t.instance.c.sop_instance_uid == sop_uid)
    return query.order_by(t.series.c.series_number.is_(None), t.series.c.series_number, t.series.c.series_key,
                           t.instance.c.instance_number.is_(None), t.instance.c.instance_number,
                           t.instance.c.instance_key)


def find_instances(engine: Engine, study_uid: str, series_uid: str | None = None,
                   sop_uid: str | None = None, *, with_metadata: bool = False) -> list:
    """Rows of the matching instances (empty list when nothing matches)."""
    columns = _LOCATION_COLUMNS + ((t.instance.c.metadata_json,) if with_metadata else ())
    with engine.connect() as conn:
        return list(conn.execute(_select(columns, study_uid, series_uid, sop_uid)))


def find_metadata(engine: Engine, study_uid: str, series_uid: str | None = None,
                  sop_uid: str | None = None) -> list:
    """(sop_instance_uid, transfer_syntax_uid, metadata_json) of the matching instances, in order."""
    columns = (t.instance.c.sop_instance_uid, t.instance.c.transfer_syntax_uid, t.instance.c.metadata_json)
    with engine.connect() as conn:
        return list(conn.execute(_select(columns, study_uid, series_uid, sop_uid)))


def find_by_sop(engine: Engine, series_uid: str, sop_uid: str, *, with_metadata: bool = False) -> list:
    """Rows of an instance named by its series and SOP Instance UIDs, in whatever study it is stored (a
    presentation state may live in another study than the images it references)."""
    columns = _LOCATION_COLUMNS + ((t.instance.c.metadata_json,) if with_metadata else ())
    query = (select(*columns)
             .select_from(t.instance.join(t.series, t.instance.c.series_key == t.series.c.series_key)
                          .join(t.study, t.series.c.study_key == t.study.c.study_key))
             .where(t.series.c.series_instance_uid == series_uid)
             .where(t.instance.c.sop_instance_uid == sop_uid)
             .order_by(t.instance.c.instance_key))
    with engine.connect() as conn:
        return list(conn.execute(query))
