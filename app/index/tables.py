"""The index schema: the only module where table and column names appear.

Four levels (patient, study, series, instance) carry the attributes QIDO-RS matches on and returns by
default (PS3.18 Tables 10.6.1-2 .. 10.6.1-5, 10.6.3-3 .. 10.6.3-5). The raw scripts under ``sql/`` create
exactly these tables; ``tests/integration/test_schema_scripts.py`` proves the two agree.

Conventions:
- Text is stored as decoded Unicode whatever SpecificCharacterSet the file used.
- Person names are stored twice: as written (``*_name``) and folded for matching (``*_name_match``: upper
  case, accents removed), so case- and accent-insensitive matching is an indexed prefix search.
- Dates are ``YYYYMMDD`` strings and times ``HHMMSS.ffffff`` strings, so ranges compare as text.
- Counters on study and series only ever move inside the transaction that inserts or removes an instance.
"""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

UID = 64          # UI: 64 chars max (PS3.5 6.2)
PN = 200          # 3 component groups x 64 chars + separators
LO = 64
SH = 16
CS = 16
DA = 8
TM = 16           # HHMMSS.ffffff
DT = 26          # YYYYMMDDHHMMSS.ffffff

SCHEMA_VERSION = 1
"""Version of the schema these tables describe (the highest numbered step in sql/<dialect>/)."""

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
    Column("applied_at", DateTime, nullable=False),
)

patient = Table(
    "patient",
    metadata,
    Column("patient_key", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    # What makes two studies belong to the same patient: PatientID + IssuerOfPatientID, or the name and
    # birth date when the file has no PatientID (see app/index/store.py).
    Column("identity_hash", String(64), nullable=False),
    Column("patient_id", String(LO), nullable=False, default=""),
    Column("issuer_of_patient_id", String(LO), nullable=False, default=""),
    Column("patient_name", String(PN), nullable=False, default=""),
    Column("patient_name_match", String(PN), nullable=False, default=""),
    Column("patient_birth_date", String(DA), nullable=False, default=""),
    Column("patient_sex", String(CS), nullable=False, default=""),
    UniqueConstraint("identity_hash", name="uq_patient_identity"),
)
Index("ix_patient_patient_id", patient.c.patient_id)
Index("ix_patient_patient_name_match", patient.c.patient_name_match)
Index("ix_patient_birth_date", patient.c.patient_birth_date)

study = Table(
    "study",
    metadata,
    Column("study_key", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("patient_key", ForeignKey("patient.patient_key", name="fk_study_patient"), nullable=False),
    Column("study_instance_uid", String(UID), nullable=False),
    Column("study_date", String(DA), nullable=False, default=""),
    Column("study_time", String(TM), nullable=False, default=""),
    # StudyDate + StudyTime as one sortable string, for combined date-time range matching (PS3.4 C.2.2.2.5.1).
    Column("study_datetime", String(DT), nullable=False, default=""),
    Column("accession_number", String(SH), nullable=False, default=""),
    Column("study_id", String(SH), nullable=False, default=""),
    Column("study_description", String(LO), nullable=False, default=""),
    Column("referring_physician_name", String(PN), nullable=False, default=""),
    Column("referring_physician_name_match", String(PN), nullable=False, default=""),
    Column("timezone_offset_from_utc", String(SH), nullable=False, default=""),
    Column("specific_character_set", String(LO), nullable=False, default=""),
    Column("modalities_in_study", String(LO), nullable=False, default=""),
    Column("number_of_series", Integer, nullable=False, default=0),
    Column("number_of_instances", Integer, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("study_instance_uid", name="uq_study_uid"),
)
Index("ix_study_patient_key", study.c.patient_key)
Index("ix_study_study_date", study.c.study_date, study.c.study_key)
Index("ix_study_study_datetime", study.c.study_datetime)
Index("ix_study_accession_number", study.c.accession_number)
Index("ix_study_study_id", study.c.study_id)
Index("ix_study_referring_physician_name_match", study.c.referring_physician_name_match)

series = Table(
    "series",
    metadata,
    Column("series_key", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("study_key", ForeignKey("study.study_key", name="fk_series_study"), nullable=False),
    Column("series_instance_uid", String(UID), nullable=False),
    Column("modality", String(CS), nullable=False, default=""),
    Column("series_number", Integer, nullable=True),
    Column("series_description", String(LO), nullable=False, default=""),
    Column("series_date", String(DA), nullable=False, default=""),
    Column("series_time", String(TM), nullable=False, default=""),
    Column("body_part_examined", String(CS), nullable=False, default=""),
    Column("laterality", String(CS), nullable=False, default=""),
    Column("performed_procedure_step_start_date", String(DA), nullable=False, default=""),
    Column("performed_procedure_step_start_time", String(TM), nullable=False, default=""),
    Column("timezone_offset_from_utc", String(SH), nullable=False, default=""),
    Column("number_of_instances", Integer, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("series_instance_uid", name="uq_series_uid"),
)
Index("ix_series_study_key", series.c.study_key, series.c.series_key)
Index("ix_series_modality", series.c.modality, series.c.series_key)
Index("ix_series_series_number", series.c.series_number)
Index("ix_series_pps_start_date", series.c.performed_procedure_step_start_date)

# RequestAttributesSequence items of a series (PS3.18 Table 10.6.1-3: matched as a sequence key).
series_request_attributes = Table(
    "series_request_attributes",
    metadata,
    Column("series_request_key", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("series_key", ForeignKey("series.series_key", name="fk_series_request_series", ondelete="CASCADE"),
           nullable=False),
    Column("requested_procedure_id", String(SH), nullable=False, default=""),
    Column("scheduled_procedure_step_id", String(SH), nullable=False, default=""),
)
Index("ix_series_request_series_key", series_request_attributes.c.series_key)
Index("ix_series_request_spsid", series_request_attributes.c.scheduled_procedure_step_id)
Index("ix_series_request_rpid", series_request_attributes.c.requested_procedure_id)

instance = Table(
    "instance",
    metadata,
    Column("instance_key", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("series_key", ForeignKey("series.series_key", name="fk_instance_series"), nullable=False),
    Column("sop_instance_uid", String(UID), nullable=False),
    Column("sop_class_uid", String(UID), nullable=False),
    Column("instance_number", Integer, nullable=True),
    Column("content_date", String(DA), nullable=False, default=""),
    Column("content_time", String(TM), nullable=False, default=""),
    Column("rows", Integer, nullable=True),
    Column("columns", Integer, nullable=True),
    Column("bits_allocated", Integer, nullable=True),
    Column("number_of_frames", Integer, nullable=True),
    Column("transfer_syntax_uid", String(UID), nullable=False),
    # Where the bytes are: a key chosen by the server, never derived from a client's UID.
    Column("blob_key", String(200), nullable=False),
    Column("blob_size", BigInteger, nullable=False),
    # Pixel Data located once at store time (byte offset of the value, and its length; -1 when undefined
    # length), and for encapsulated syntaxes the frames as JSON [[offset, length], ...] of each frame's
    # fragments, plus the offset of every other bulk value: JSON {"frames": [[[offset, length], ...], ...],
    # "bulk": {"tag/path": [offset, length]}}, so /frames/N and /bulkdata are ranged reads.
    Column("pixel_data_offset", BigInteger, nullable=True),
    Column("pixel_data_length", BigInteger, nullable=True),
    Column("layout_json", Text, nullable=True),
    # DICOM JSON of the instance with bulk data replaced by BulkDataURIs relative to the WADO-RS root.
    Column("metadata_json", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("sop_instance_uid", name="uq_instance_uid"),
)
Index("ix_instance_series_key", instance.c.series_key, instance.c.instance_number, instance.c.instance_key)
Index("ix_instance_sop_class_uid", instance.c.sop_class_uid)

ALL_TABLES = (schema_version, patient, study, series, series_request_attributes, instance)
