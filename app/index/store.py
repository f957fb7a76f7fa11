"""Writing instances into the index: one transaction per instance, counters kept exact.

No pydicom here: callers hand in plain dicts (see app/codec/instance.py) whose keys are column names.
Concurrent stores of instances of one study (several clients, several workers) converge on one patient,
one study and one series row: inserts that lose a race fall back to the row the winner committed.
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import and_, delete, insert, select, update
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


def _get_or_create(conn: Connection, table, key_column, key_value, values: dict, *columns):
    """(row, created): the row whose ``key_column`` is ``key_value`` (primary key first, then ``columns``),
    inserted from ``values`` when absent."""
    pk = table.primary_key.columns.values()[0]
    query = select(pk, *columns).where(key_column == key_value)
    row = conn.execute(query).first()
    if row is not None:
        return row, False
    try:
        with conn.begin_nested():
            conn.execute(insert(table).values(**values))
    except IntegrityError:
        pass            # another transaction committed the same row between our SELECT and INSERT
    row = conn.execute(query).first()
    if row is None:
        raise LookupError(f"{table.name} row {key_value!r} vanished")
    return row, True


_PATIENT_DEMOGRAPHICS = ("patient_name", "patient_name_match", "patient_sex", "patient_birth_date")


def store_instance(engine: Engine, record, *, blob_key: str, blob_size: int, layout: dict | None,
                   replace: bool) -> StoreResult:
    """Insert one instance and its parents; raise DuplicateInstance when it exists and not ``replace``."""
    (result,) = store_batch(engine, [(record, blob_key, blob_size, layout)], replace=replace)
    if isinstance(result, Exception):
        raise result
    return result


class _RetryBatch(Exception):
    """The database chose this transaction as a deadlock victim: undo all of it and run it again."""


_RETRYABLE = ("deadlock detected", "could not serialize", "database is locked", "deadlocked on lock")


def store_batch(engine: Engine, items: list, *, replace: bool, attempts: int = 4) -> list:
    """Index several instances in one transaction, each in its own savepoint.

    ``items`` are (record, blob_key, blob_size, layout). Returns, per item, a StoreResult or the exception
    that refused it (DuplicateInstance, InstanceMovedStudy, or a database error). One COMMIT for the batch
    instead of one per instance: a STOW-RS request of many parts pays the journal sync once. If the
    COMMIT itself fails, every item of the batch reports that error and nothing of it is stored. A batch
    that loses a deadlock (two requests adding instances to the same studies) is rolled back and retried.
    """
    for attempt in range(attempts):
        try:
            return _store_batch_once(engine, items, replace)
        except _RetryBatch as retry:
            if attempt == attempts - 1:
                return [retry.__cause__ or retry] * len(items)
            time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
    raise AssertionError("unreachable")


def _store_batch_once(engine: Engine, items: list, replace: bool) -> list:
    results: list = [None] * len(items)
    try:
        with write_transaction(engine) as conn:
            for index, (record, blob_key, blob_size, layout) in enumerate(items):
                try:
                    with conn.begin_nested():
                        results[index] = _store_in(conn, record, blob_key, blob_size, layout, replace)
                except (DuplicateInstance, InstanceMovedStudy) as refused:
                    results[index] = refused
                except IntegrityError as error:
                    # A concurrent request stored the same SOP Instance UID first: a duplicate. Any
                    # other constraint failure is the caller's processing failure.
                    stored = conn.execute(select(t.instance.c.instance_key).where(
                        t.instance.c.sop_instance_uid == record.sop_instance_uid)).first()
                    results[index] = DuplicateInstance(record.sop_instance_uid) if stored else error
                except Exception as error:     # reported per item; the savepoint undid its statements
                    if any(text in str(error).lower() for text in _RETRYABLE):
                        raise _RetryBatch() from error
                    results[index] = error
    except _RetryBatch:
        raise
    except Exception as error:
        if any(text in str(error).lower() for text in _RETRYABLE):
            raise _RetryBatch() from error
        return [r if isinstance(r, (DuplicateInstance, InstanceMovedStudy)) else error for r in results]
    return results


def _store_in(conn: Connection, record, blob_key, blob_size, layout, replace) -> StoreResult:
    """The statements of one instance inside the caller's transaction.

    The common case (patient, study and series already there) costs five statements besides the insert.
    """
    now = _now()
    patient_values = dict(record.patient, identity_hash=patient_identity(record.patient))
    patient, created = _get_or_create(conn, t.patient, t.patient.c.identity_hash,
                                      patient_values["identity_hash"], patient_values,
                                      *(t.patient.c[name] for name in _PATIENT_DEMOGRAPHICS))
    patient_key = patient[0]
    changed = {name: record.patient[name] for name in _PATIENT_DEMOGRAPHICS
               if getattr(patient, name) != record.patient[name]}
    if changed and not created:
        conn.execute(update(t.patient).where(t.patient.c.patient_key == patient_key).values(**changed))
    study, _ = _get_or_create(
        conn, t.study, t.study.c.study_instance_uid, record.study_instance_uid,
        dict(record.study, patient_key=patient_key, number_of_series=0, number_of_instances=0,
             modalities_in_study="", created_at=now, updated_at=now))
    study_key = study[0]
    series, _ = _get_or_create(
        conn, t.series, t.series.c.series_instance_uid, record.series_instance_uid,
        dict(record.series, study_key=study_key, number_of_instances=0, created_at=now, updated_at=now),
        t.series.c.study_key, t.series.c.number_of_instances)
    series_key, series_instances = series[0], series.number_of_instances
    if series.study_key != study_key:
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
        _count(conn, study_key, series_key, -1, series_instances, now)
        series_instances -= 1

    result = conn.execute(insert(t.instance).values(
        **record.instance, series_key=series_key, blob_key=blob_key, blob_size=blob_size,
        layout_json=json.dumps(layout, separators=(",", ":")) if layout is not None else None,
        metadata_json=record.metadata_json, created_at=now))
    if record.request_attributes and series_instances == 0 and existing is None:
        conn.execute(insert(t.series_request_attributes),
                     [dict(item, series_key=series_key) for item in record.request_attributes])
    _count(conn, study_key, series_key, +1, series_instances, now)
    return StoreResult(result.inserted_primary_key[0], replaced_blob)


def _count(conn: Connection, study_key: int, series_key: int, change: int, series_instances: int,
           now: datetime) -> None:
    """Move the instance counters; when a series becomes populated or empty, derive the study's series
    count and modalities from its series rows (read after the update, so concurrent writers converge)."""
    # The study row is updated (and so locked) first: every writer of a study takes its locks in the same
    # order (study, then series), so batches of instances do not deadlock on each other; and when the
    # series rows are read below, a concurrent transaction that populated another series has committed.
    conn.execute(update(t.study).where(t.study.c.study_key == study_key).values(
        number_of_instances=t.study.c.number_of_instances + change, updated_at=now))
    conn.execute(update(t.series).where(t.series.c.series_key == series_key).values(
        number_of_instances=t.series.c.number_of_instances + change, updated_at=now))
    if series_instances + change in (0, 1):
        populated = and_(t.series.c.study_key == study_key, t.series.c.number_of_instances > 0)
        modalities = [m for (m,) in conn.execute(select(t.series.c.modality).where(populated))]
        conn.execute(update(t.study).where(t.study.c.study_key == study_key).values(
            number_of_series=len(modalities),
            modalities_in_study="\\".join(sorted({m for m in modalities if m}))[:t.LO]))
