"""Writing instances into the index: one transaction per batch, a savepoint per instance, counters kept exact.

No pydicom here: callers hand in plain dicts (see app/codec/instance.py) whose keys are column names.
Concurrent stores of instances of one study (several clients, several workers) converge on one patient,
one study and one series row: inserts that lose a race fall back to the row the winner committed.
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import and_, bindparam, delete, insert, select, update
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


def _get_or_create(conn: Connection, query, table, key_value, values: dict):
    """(row, created): the row ``query`` finds for ``key_value``, inserted from ``values`` when absent."""
    row = conn.execute(query, {"key": key_value}).first()
    if row is not None:
        return row, False
    try:
        with conn.begin_nested():
            conn.execute(_INSERT[table.name], values)
    except IntegrityError:
        pass            # another transaction committed the same row between our SELECT and INSERT
    row = conn.execute(query, {"key": key_value}).first()
    if row is None:
        raise LookupError(f"{table.name} row {key_value!r} vanished")
    return row, True


_PATIENT_DEMOGRAPHICS = ("patient_name", "patient_name_match", "patient_sex", "patient_birth_date")

# Built once: SQLAlchemy then reuses their compiled forms without building statements per instance.
_INSERT = {table.name: insert(table) for table in (t.patient, t.study, t.series, t.instance,
                                                   t.series_request_attributes)}
_PATIENT_BY_IDENTITY = select(t.patient.c.patient_key,
                              *(t.patient.c[name] for name in _PATIENT_DEMOGRAPHICS)) \
    .where(t.patient.c.identity_hash == bindparam("key"))
_STUDY_BY_UID = select(t.study.c.study_key).where(t.study.c.study_instance_uid == bindparam("key"))
_SERIES_BY_UID = select(t.series.c.series_key, t.series.c.study_key, t.series.c.number_of_instances) \
    .where(t.series.c.series_instance_uid == bindparam("key"))
_INSTANCE_BY_UID = select(t.instance.c.instance_key, t.instance.c.blob_key, t.instance.c.series_key) \
    .where(t.instance.c.sop_instance_uid == bindparam("key"))


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


@dataclass
class _Batch:
    """What one transaction has resolved so far, so the instances of one series cost one INSERT each.

    Only items whose savepoint was released are recorded here (``_Staged.merge``): a row created inside a
    savepoint that was then rolled back must not be remembered. The instance counters are added up and
    written once per series and study at the end of the batch.
    """
    now: datetime
    patients: dict = field(default_factory=dict)   # identity hash -> (patient_key, {demographics})
    studies: dict = field(default_factory=dict)    # study uid -> study_key
    series: dict = field(default_factory=dict)     # series uid -> (series_key, study_key)
    counts: dict = field(default_factory=dict)     # series_key -> [study_key, instances before, change]


@dataclass
class _Staged:
    patient: tuple | None = None      # (identity hash, patient_key, demographics)
    study: tuple | None = None        # (uid, study_key)
    series: tuple | None = None       # (uid, series_key, study_key, instances before the batch)
    change: int = 0

    def merge(self, batch: _Batch) -> None:
        if self.patient:
            batch.patients[self.patient[0]] = self.patient[1:]
        if self.study:
            batch.studies[self.study[0]] = self.study[1]
        uid, series_key, study_key, before = self.series
        batch.series.setdefault(uid, (series_key, study_key))
        batch.counts.setdefault(series_key, [study_key, before, 0])[2] += self.change


def _store_batch_once(engine: Engine, items: list, replace: bool) -> list:
    results: list = [None] * len(items)
    try:
        with write_transaction(engine) as conn:
            batch = _Batch(now=_now())
            for index, (record, blob_key, blob_size, layout) in enumerate(items):
                staged = _Staged()
                try:
                    with conn.begin_nested():
                        results[index] = _store_in(conn, record, blob_key, blob_size, layout, replace,
                                                   batch, staged)
                    staged.merge(batch)
                except (DuplicateInstance, InstanceMovedStudy) as refused:
                    results[index] = refused
                except IntegrityError as error:
                    # A concurrent request stored the same SOP Instance UID first: a duplicate. Any
                    # other constraint failure is the caller's processing failure.
                    stored = conn.execute(_INSTANCE_BY_UID, {"key": record.sop_instance_uid}).first()
                    results[index] = DuplicateInstance(record.sop_instance_uid) if stored else error
                except Exception as error:     # reported per item; the savepoint undid its statements
                    if any(text in str(error).lower() for text in _RETRYABLE):
                        raise _RetryBatch() from error
                    results[index] = error
            _count(conn, batch)
    except _RetryBatch:
        raise
    except Exception as error:
        if any(text in str(error).lower() for text in _RETRYABLE):
            raise _RetryBatch() from error
        return [r if isinstance(r, (DuplicateInstance, InstanceMovedStudy)) else error for r in results]
    return results


def _store_in(conn: Connection, record, blob_key, blob_size, layout, replace, batch: _Batch,
              staged: _Staged) -> StoreResult:
    """The statements of one instance inside the caller's transaction.

    The common case (patient, study and series already resolved by this batch, duplicates refused)
    is one INSERT; the first instance of a series in a batch adds three SELECTs.
    """
    now = batch.now
    identity = patient_identity(record.patient)
    demographics = {name: record.patient[name] for name in _PATIENT_DEMOGRAPHICS}
    known = batch.patients.get(identity)
    if known is None:
        row, created = _get_or_create(conn, _PATIENT_BY_IDENTITY, t.patient, identity,
                                      dict(record.patient, identity_hash=identity))
        known = (row.patient_key, {name: getattr(row, name) for name in _PATIENT_DEMOGRAPHICS})
        if created:
            known = (known[0], demographics)
    patient_key, stored_demographics = known
    changed = {name: value for name, value in demographics.items() if stored_demographics[name] != value}
    if changed:
        conn.execute(update(t.patient).where(t.patient.c.patient_key == patient_key).values(**changed))
    if changed or identity not in batch.patients:
        staged.patient = (identity, patient_key, demographics)

    study_key = batch.studies.get(record.study_instance_uid)
    if study_key is None:
        study, _ = _get_or_create(
            conn, _STUDY_BY_UID, t.study, record.study_instance_uid,
            dict(record.study, patient_key=patient_key, number_of_series=0, number_of_instances=0,
                 modalities_in_study="", created_at=now, updated_at=now))
        study_key = study.study_key
        staged.study = (record.study_instance_uid, study_key)

    known_series = batch.series.get(record.series_instance_uid)
    if known_series is None:
        series, _ = _get_or_create(
            conn, _SERIES_BY_UID, t.series, record.series_instance_uid,
            dict(record.series, study_key=study_key, number_of_instances=0, created_at=now, updated_at=now))
        series_key, series_study, before = series.series_key, series.study_key, series.number_of_instances
    else:
        series_key, series_study = known_series
        before = batch.counts[series_key][1]
    if series_study != study_key:
        raise InstanceMovedStudy(f"series {record.series_instance_uid} is stored under another study")
    staged.series = (record.series_instance_uid, series_key, study_key, before)
    series_instances = before + (batch.counts[series_key][2] if series_key in batch.counts else 0)

    replaced_blob = None
    existing = conn.execute(_INSTANCE_BY_UID, {"key": record.sop_instance_uid}).first() if replace else None
    if existing is not None:
        if existing.series_key != series_key:
            raise InstanceMovedStudy(f"instance {record.sop_instance_uid} is stored in another series")
        replaced_blob = existing.blob_key
        conn.execute(delete(t.instance).where(t.instance.c.instance_key == existing.instance_key))
        series_instances -= 1
        staged.change -= 1

    # Without ``replace`` a stored SOP Instance UID fails this INSERT (uq_instance_uid): a duplicate.
    result = conn.execute(_INSERT["instance"], dict(
        record.instance, series_key=series_key, blob_key=blob_key, blob_size=blob_size,
        layout_json=json.dumps(layout, separators=(",", ":")) if layout is not None else None,
        metadata_json=record.metadata_json, created_at=now))
    if record.request_attributes and series_instances == 0 and existing is None:
        conn.execute(_INSERT["series_request_attributes"],
                     [dict(item, series_key=series_key) for item in record.request_attributes])
    staged.change += 1
    return StoreResult(result.inserted_primary_key[0], replaced_blob)


def _count(conn: Connection, batch: _Batch) -> None:
    """Move the instance counters of the batch; where a series became populated or empty, derive its
    study's series count and modalities from the series rows (read after the update, so concurrent
    writers converge)."""
    # Every writer takes its row locks in the same order (studies, then series, each by key), so
    # concurrent batches over the same studies do not deadlock on each other; and when the series rows
    # are read below, a concurrent transaction that populated another series of the study has committed.
    changes = {key: (study_key, before, change) for key, (study_key, before, change) in batch.counts.items()
               if change}
    by_study: dict[int, int] = {}
    for study_key, _, change in changes.values():
        by_study[study_key] = by_study.get(study_key, 0) + change
    for study_key in sorted(by_study):
        conn.execute(_ADD_TO_STUDY, {"key": study_key, "change": by_study[study_key], "now": batch.now})
    for series_key in sorted(changes):
        conn.execute(_ADD_TO_SERIES, {"key": series_key, "change": changes[series_key][2], "now": batch.now})
    for study_key in sorted({study_key for study_key, before, change in changes.values()
                             if before == 0 or before + change <= 0}):
        populated = and_(t.series.c.study_key == study_key, t.series.c.number_of_instances > 0)
        modalities = [m for (m,) in conn.execute(select(t.series.c.modality).where(populated))]
        conn.execute(update(t.study).where(t.study.c.study_key == study_key).values(
            number_of_series=len(modalities),
            modalities_in_study="\\".join(sorted({m for m in modalities if m}))[:t.LO]))


_ADD_TO_STUDY = update(t.study).where(t.study.c.study_key == bindparam("key")).values(
    number_of_instances=t.study.c.number_of_instances + bindparam("change"), updated_at=bindparam("now"))
_ADD_TO_SERIES = update(t.series).where(t.series.c.series_key == bindparam("key")).values(
    number_of_instances=t.series.c.number_of_instances + bindparam("change"), updated_at=bindparam("now"))
