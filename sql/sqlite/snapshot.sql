-- DICOMcloud for Python: full index schema for SQLite at version 1 (snapshot).
-- Same result as running every numbered step in order (0001..0001); for creating a new database in one go.
-- Keep it in step with the numbered scripts: tests/integration/test_schema_scripts.py compares them.
-- Re-runnable: every object is created only if missing, and version 1 is recorded only once.
-- Mirrors app/index/tables.py; tests/integration/test_schema_scripts.py checks that the two agree.
-- Column defaults ('' and 0) are supplied by the application, as in tables.py.
-- Surrogate keys use AUTOINCREMENT so a deleted key is never handed out again (as on the other databases).

CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL PRIMARY KEY,
    description VARCHAR(200) NOT NULL,
    applied_at DATETIME NOT NULL
);

CREATE TABLE IF NOT EXISTS patient (
    patient_key INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    identity_hash VARCHAR(64) NOT NULL,
    patient_id VARCHAR(64) NOT NULL,
    issuer_of_patient_id VARCHAR(64) NOT NULL,
    patient_name VARCHAR(200) NOT NULL,
    patient_name_match VARCHAR(200) NOT NULL,
    patient_birth_date VARCHAR(8) NOT NULL,
    patient_sex VARCHAR(16) NOT NULL,
    CONSTRAINT uq_patient_identity UNIQUE (identity_hash)
);
CREATE INDEX IF NOT EXISTS ix_patient_patient_id ON patient (patient_id);
CREATE INDEX IF NOT EXISTS ix_patient_patient_name_match ON patient (patient_name_match);
CREATE INDEX IF NOT EXISTS ix_patient_birth_date ON patient (patient_birth_date);

CREATE TABLE IF NOT EXISTS study (
    study_key INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    patient_key INTEGER NOT NULL,
    study_instance_uid VARCHAR(64) NOT NULL,
    study_date VARCHAR(8) NOT NULL,
    study_time VARCHAR(16) NOT NULL,
    study_datetime VARCHAR(26) NOT NULL,
    accession_number VARCHAR(16) NOT NULL,
    study_id VARCHAR(16) NOT NULL,
    study_description VARCHAR(64) NOT NULL,
    referring_physician_name VARCHAR(200) NOT NULL,
    referring_physician_name_match VARCHAR(200) NOT NULL,
    timezone_offset_from_utc VARCHAR(16) NOT NULL,
    specific_character_set VARCHAR(64) NOT NULL,
    modalities_in_study VARCHAR(64) NOT NULL,
    number_of_series INTEGER NOT NULL,
    number_of_instances INTEGER NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    CONSTRAINT uq_study_uid UNIQUE (study_instance_uid),
    CONSTRAINT fk_study_patient FOREIGN KEY (patient_key) REFERENCES patient (patient_key)
);
CREATE INDEX IF NOT EXISTS ix_study_patient_key ON study (patient_key);
CREATE INDEX IF NOT EXISTS ix_study_study_date ON study (study_date, study_key);
CREATE INDEX IF NOT EXISTS ix_study_study_datetime ON study (study_datetime);
CREATE INDEX IF NOT EXISTS ix_study_accession_number ON study (accession_number);
CREATE INDEX IF NOT EXISTS ix_study_study_id ON study (study_id);
CREATE INDEX IF NOT EXISTS ix_study_referring_physician_name_match ON study (referring_physician_name_match);

CREATE TABLE IF NOT EXISTS series (
    series_key INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    study_key INTEGER NOT NULL,
    series_instance_uid VARCHAR(64) NOT NULL,
    modality VARCHAR(16) NOT NULL,
    series_number INTEGER NULL,
    series_description VARCHAR(64) NOT NULL,
    series_date VARCHAR(8) NOT NULL,
    series_time VARCHAR(16) NOT NULL,
    body_part_examined VARCHAR(16) NOT NULL,
    laterality VARCHAR(16) NOT NULL,
    performed_procedure_step_start_date VARCHAR(8) NOT NULL,
    performed_procedure_step_start_time VARCHAR(16) NOT NULL,
    timezone_offset_from_utc VARCHAR(16) NOT NULL,
    number_of_instances INTEGER NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    CONSTRAINT uq_series_uid UNIQUE (series_instance_uid),
    CONSTRAINT fk_series_study FOREIGN KEY (study_key) REFERENCES study (study_key)
);
CREATE INDEX IF NOT EXISTS ix_series_study_key ON series (study_key, series_key);
CREATE INDEX IF NOT EXISTS ix_series_modality ON series (modality, series_key);
CREATE INDEX IF NOT EXISTS ix_series_series_number ON series (series_number);
CREATE INDEX IF NOT EXISTS ix_series_pps_start_date ON series (performed_procedure_step_start_date);

CREATE TABLE IF NOT EXISTS series_request_attributes (
    series_request_key INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    series_key INTEGER NOT NULL,
    requested_procedure_id VARCHAR(16) NOT NULL,
    scheduled_procedure_step_id VARCHAR(16) NOT NULL,
    CONSTRAINT fk_series_request_series FOREIGN KEY (series_key) REFERENCES series (series_key)
        ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS ix_series_request_series_key ON series_request_attributes (series_key);
CREATE INDEX IF NOT EXISTS ix_series_request_spsid ON series_request_attributes (scheduled_procedure_step_id);
CREATE INDEX IF NOT EXISTS ix_series_request_rpid ON series_request_attributes (requested_procedure_id);

CREATE TABLE IF NOT EXISTS instance (
    instance_key INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    series_key INTEGER NOT NULL,
    sop_instance_uid VARCHAR(64) NOT NULL,
    sop_class_uid VARCHAR(64) NOT NULL,
    instance_number INTEGER NULL,
    content_date VARCHAR(8) NOT NULL,
    content_time VARCHAR(16) NOT NULL,
    rows INTEGER NULL,
    columns INTEGER NULL,
    bits_allocated INTEGER NULL,
    number_of_frames INTEGER NULL,
    transfer_syntax_uid VARCHAR(64) NOT NULL,
    blob_key VARCHAR(200) NOT NULL,
    blob_size BIGINT NOT NULL,
    pixel_data_offset BIGINT NULL,
    pixel_data_length BIGINT NULL,
    layout_json TEXT NULL,
    metadata_json TEXT NOT NULL,
    created_at DATETIME NOT NULL,
    CONSTRAINT uq_instance_uid UNIQUE (sop_instance_uid),
    CONSTRAINT fk_instance_series FOREIGN KEY (series_key) REFERENCES series (series_key)
);
CREATE INDEX IF NOT EXISTS ix_instance_series_key ON instance (series_key, instance_number, instance_key);
CREATE INDEX IF NOT EXISTS ix_instance_sop_class_uid ON instance (sop_class_uid);

INSERT INTO schema_version (version, description, applied_at)
SELECT 1, 'initial schema', CURRENT_TIMESTAMP
WHERE NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 1);
