"""Writing instances into the index: one transaction per instance, counters kept exact.

No pydicom here: callers hand in plain dicts (see app/codec/instance.py) whose keys are column names.
Concurrent stores of instances of one study (several clients, several workers) converge on one patient,
one study and one series row: inserts that lose a race fall back to the row the winner committed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from app.index import tables as t
from app.index.database import write_transaction


class DuplicateInstance(Exception):
    """The SOP Instance UID is already stored and duplicates are refused."""


class InstanceMovedStudy(Exception):
    """A SOP Instance UID already stored under another study or series cannot be replaced in place."""


@dataclass
class StoreResult:
    instance_key: int
    replaced_blob_key: str | None   # the previous blob of a replaced instance: delete it after commit


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def patient_identity(patient: dict) -> str:
    """PatientID + Issuer identify a patient; without a PatientID, name + birth date do."""
    if patient.get("patient_id"):
        key = ["id", patient["patient_id"], patient.get("issuer_of_patient_id", "")]
    else:
        key = ["name", patient.get("patient_name", ""), patient.get("patient_birth_date", "")]
    return hashlib.sha256(json.dumps(key).encode("utf-8")).hexdigest()


def find_instance(engine: Engine, sop_instance_uid: str):
    with engine.connect() as conn:
        return conn.execute(select(t.instance.c.instance_key, t.instance.c.blob_key)
                            .where(t.instance.c.sop_instance_uid == sop_instance_uid)).first()


def _get_or_create(conn: Connection, table, key_column, key_value, values: dict):
    """Primary key of the row whose ``key_column`` is ``key_value``; inserted when absent. (key, created)"""
    pk = table.primary_key.columns.values()[0]
    row = conn.execute(select(pk).where(key_column == key_value)).first()
    if row is not None:
        return row[0], False
    try:
        with conn.begin_nested():
            result = conn.execute(insert(table).values(**values))
            return result.inserted_primary_key[0], True
    except IntegrityError:
        # Another transaction committed the same row between our SELECT and INSERT.
        row = conn.execute(select(pk).where(key_column == key_value)).first()
        if row is None:
            raise
        return row[0], False


def store_instance(engine: Engine, record, *, blob_key: str, blob_size: int, layout: dict | None,
                   replace: bool) -> StoreResult:
    """Insert one instance and its parents; raise DuplicateInstance when it exists and not ``replace``."""
    now = _now()
    with write_transaction(engine) as conn:
        patient_values = dict(record.patient, identity_hash=patient_identity(record.patient))
        patient_key, created = _get_or_create(conn, t.patient, t.patient.c.identity_hash,
                                              patient_values["identity_hash"], patient_values)
        if not created:
            conn.execute(update(t.patient).where(t.patient.c.patient_key == patient_key).values(
                patient_name=record.patient["patient_name"],
                patient_name_match=record.patient["patient_name_match"],
                patient_sex=record.patient["patient_sex"],
                patient_birth_date=record.patient["patient_birth_date"]))
        study_key, _ = _get_or_create(
            conn, t.study, t.study.c.study_instance_uid, record.study_instance_uid,
            dict(record.study, patient_key=patient_key, number_of_series=0, number_of_instances=0,
                 modalities_in_study="", created_at=now, updated_at=now))
        series_key, _ = _get_or_create(
            conn, t.series, t.series.c.series_instance_uid, record.series_instance_uid,
            dict(record.series, study_key=study_key, number_of_instances=0, created_at=now, updated_at=now))
        series_row = conn.execute(select(t.series.c.study_key, t.series.c.number_of_instances)
                                  .where(t.series.c.series_key == series_key)).one()
        if series_row.study_key != study_key:
            raise InstanceMovedStudy(f"series {record.series_instance_uid} is stored under another study")

        replaced_blob = None
        existing = conn.execute(select(t.instance.c.instance_key, t.instance.c.blob_key, t.instance.c.series_key)
                                .where(t.instance.c.sop_instance_uid == record.sop_instance_uid)).first()
        if existing is not None:
            if not replace:
                raise DuplicateInstance(record.sop_instance_uid)
            if existing.series_key != series_key:
                raise InstanceMovedStudy(f"instance {record.sop_instance_uid} is stored in another series")
            replaced_blob = existing.blob_key
            conn.execute(delete(t.instance).where(t.instance.c.instance_key == existing.instance_key))
            _count(conn, study_key, series_key, -1, now)

        try:
            with conn.begin_nested():
                result = conn.execute(insert(t.instance).values(
                    **record.instance, series_key=series_key, blob_key=blob_key, blob_size=blob_size,
                    layout_json=json.dumps(layout, separators=(",", ":")) if layout is not None else None,
                    metadata_json=record.metadata_json, created_at=now))
        except IntegrityError:
            # A concurrent request stored the same SOP Instance UID first, or another constraint failed.
            if conn.execute(select(t.instance.c.instance_key)
                            .where(t.instance.c.sop_instance_uid == record.sop_instance_uid)).first():
                raise DuplicateInstance(record.sop_instance_uid) from None
            raise
        if record.request_attributes and series_row.number_of_instances == 0 and existing is None:
            conn.execute(insert(t.series_request_attributes),
                         [dict(item, series_key=series_key) for item in record.request_attributes])
        _count(conn, study_key, series_key, +1, now)
        return StoreResult(result.inserted_primary_key[0], replaced_blob)


def _count(conn: Connection, study_key: int, series_key: int, change: int, now: datetime) -> None:
    """Move the instance counters, then derive the series count and modalities from the series rows."""
    conn.execute(update(t.series).where(t.series.c.series_key == series_key).values(
        number_of_instances=t.series.c.number_of_instances + change, updated_at=now))
    conn.execute(update(t.study).where(t.study.c.study_key == study_key).values(
        number_of_instances=t.study.c.number_of_instances + change, updated_at=now))
    populated = and_(t.series.c.study_key == study_key, t.series.c.number_of_instances > 0)
    series_count = conn.execute(select(func.count()).select_from(t.series).where(populated)).scalar_one()
    modalities = sorted(m for (m,) in conn.execute(select(t.series.c.modality).where(populated).distinct()) if m)
    conn.execute(update(t.study).where(t.study.c.study_key == study_key).values(
        number_of_series=series_count, modalities_in_study="\\".join(modalities)[:t.LO]))


def delete_orphan_parents(engine: Engine) -> None:
    """Remove series/studies/patients left with no instance (e.g. after a failed first store)."""
    with write_transaction(engine) as conn:
        conn.execute(delete(t.series_request_attributes).where(t.series_request_attributes.c.series_key.in_(
            select(t.series.c.series_key).where(t.series.c.number_of_instances <= 0))))
        conn.execute(delete(t.series).where(t.series.c.number_of_instances <= 0))
        conn.execute(delete(t.study).where(~t.study.c.study_key.in_(select(t.series.c.study_key))))
        conn.execute(delete(t.patient).where(~t.patient.c.patient_key.in_(select(t.study.c.patient_key))))
