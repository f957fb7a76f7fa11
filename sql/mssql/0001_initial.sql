-- DICOMcloud for Python: index schema for MS SQL Server / Azure SQL, step 0001 (initial schema).
-- Re-runnable: every object is created only if missing, and version 1 is recorded only once.
-- Batches are separated by GO lines (sqlcmd / SSMS convention; app/index/schema.py splits on them too).
-- Mirrors app/index/tables.py; scripts/check_schema.py checks that the two agree. Text is NVARCHAR so
-- non-Latin names survive whatever the database collation is; timestamps are DATETIME2 (UTC).
-- Column defaults ('' and 0) are supplied by the application, as in tables.py.

IF OBJECT_ID(N'dbo.schema_version', N'U') IS NULL
CREATE TABLE dbo.schema_version (
    version INT NOT NULL,
    description NVARCHAR(200) NOT NULL,
    applied_at DATETIME2 NOT NULL,
    CONSTRAINT pk_schema_version PRIMARY KEY (version)
);
GO

IF OBJECT_ID(N'dbo.patient', N'U') IS NULL
CREATE TABLE dbo.patient (
    patient_key BIGINT IDENTITY(1,1) NOT NULL,
    identity_hash NVARCHAR(64) NOT NULL,
    patient_id NVARCHAR(64) NOT NULL,
    issuer_of_patient_id NVARCHAR(64) NOT NULL,
    patient_name NVARCHAR(200) NOT NULL,
    patient_name_match NVARCHAR(200) NOT NULL,
    patient_birth_date NVARCHAR(8) NOT NULL,
    patient_sex NVARCHAR(16) NOT NULL,
    CONSTRAINT pk_patient PRIMARY KEY (patient_key),
    CONSTRAINT uq_patient_identity UNIQUE (identity_hash)
);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.patient')
                                           AND name = N'ix_patient_patient_id')
    CREATE INDEX ix_patient_patient_id ON dbo.patient (patient_id);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.patient')
                                           AND name = N'ix_patient_patient_name_match')
    CREATE INDEX ix_patient_patient_name_match ON dbo.patient (patient_name_match);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.patient')
                                           AND name = N'ix_patient_birth_date')
    CREATE INDEX ix_patient_birth_date ON dbo.patient (patient_birth_date);
GO

IF OBJECT_ID(N'dbo.study', N'U') IS NULL
CREATE TABLE dbo.study (
    study_key BIGINT IDENTITY(1,1) NOT NULL,
    patient_key BIGINT NOT NULL,
    study_instance_uid NVARCHAR(64) NOT NULL,
    study_date NVARCHAR(8) NOT NULL,
    study_time NVARCHAR(16) NOT NULL,
    study_datetime NVARCHAR(26) NOT NULL,
    accession_number NVARCHAR(16) NOT NULL,
    study_id NVARCHAR(16) NOT NULL,
    study_description NVARCHAR(64) NOT NULL,
    referring_physician_name NVARCHAR(200) NOT NULL,
    referring_physician_name_match NVARCHAR(200) NOT NULL,
    timezone_offset_from_utc NVARCHAR(16) NOT NULL,
    specific_character_set NVARCHAR(64) NOT NULL,
    modalities_in_study NVARCHAR(64) NOT NULL,
    number_of_series INT NOT NULL,
    number_of_instances INT NOT NULL,
    created_at DATETIME2 NOT NULL,
    updated_at DATETIME2 NOT NULL,
    CONSTRAINT pk_study PRIMARY KEY (study_key),
    CONSTRAINT uq_study_uid UNIQUE (study_instance_uid),
    CONSTRAINT fk_study_patient FOREIGN KEY (patient_key) REFERENCES dbo.patient (patient_key)
);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.study')
                                           AND name = N'ix_study_patient_key')
    CREATE INDEX ix_study_patient_key ON dbo.study (patient_key);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.study')
                                           AND name = N'ix_study_study_date')
    CREATE INDEX ix_study_study_date ON dbo.study (study_date, study_key);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.study')
                                           AND name = N'ix_study_study_datetime')
    CREATE INDEX ix_study_study_datetime ON dbo.study (study_datetime);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.study')
                                           AND name = N'ix_study_accession_number')
    CREATE INDEX ix_study_accession_number ON dbo.study (accession_number);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.study')
                                           AND name = N'ix_study_study_id')
    CREATE INDEX ix_study_study_id ON dbo.study (study_id);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.study')
                                           AND name = N'ix_study_referring_physician_name_match')
    CREATE INDEX ix_study_referring_physician_name_match ON dbo.study (referring_physician_name_match);
GO

IF OBJECT_ID(N'dbo.series', N'U') IS NULL
CREATE TABLE dbo.series (
    series_key BIGINT IDENTITY(1,1) NOT NULL,
    study_key BIGINT NOT NULL,
    series_instance_uid NVARCHAR(64) NOT NULL,
    modality NVARCHAR(16) NOT NULL,
    series_number INT NULL,
    series_description NVARCHAR(64) NOT NULL,
    series_date NVARCHAR(8) NOT NULL,
    series_time NVARCHAR(16) NOT NULL,
    body_part_examined NVARCHAR(16) NOT NULL,
    laterality NVARCHAR(16) NOT NULL,
    performed_procedure_step_start_date NVARCHAR(8) NOT NULL,
    performed_procedure_step_start_time NVARCHAR(16) NOT NULL,
    timezone_offset_from_utc NVARCHAR(16) NOT NULL,
    number_of_instances INT NOT NULL,
    created_at DATETIME2 NOT NULL,
    updated_at DATETIME2 NOT NULL,
    CONSTRAINT pk_series PRIMARY KEY (series_key),
    CONSTRAINT uq_series_uid UNIQUE (series_instance_uid),
    CONSTRAINT fk_series_study FOREIGN KEY (study_key) REFERENCES dbo.study (study_key)
);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.series')
                                           AND name = N'ix_series_study_key')
    CREATE INDEX ix_series_study_key ON dbo.series (study_key, series_key);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.series')
                                           AND name = N'ix_series_modality')
    CREATE INDEX ix_series_modality ON dbo.series (modality, series_key);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.series')
                                           AND name = N'ix_series_series_number')
    CREATE INDEX ix_series_series_number ON dbo.series (series_number);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.series')
                                           AND name = N'ix_series_pps_start_date')
    CREATE INDEX ix_series_pps_start_date ON dbo.series (performed_procedure_step_start_date);
GO

IF OBJECT_ID(N'dbo.series_request_attributes', N'U') IS NULL
CREATE TABLE dbo.series_request_attributes (
    series_request_key BIGINT IDENTITY(1,1) NOT NULL,
    series_key BIGINT NOT NULL,
    requested_procedure_id NVARCHAR(16) NOT NULL,
    scheduled_procedure_step_id NVARCHAR(16) NOT NULL,
    CONSTRAINT pk_series_request_attributes PRIMARY KEY (series_request_key),
    CONSTRAINT fk_series_request_series FOREIGN KEY (series_key) REFERENCES dbo.series (series_key)
        ON DELETE CASCADE
);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.series_request_attributes')
                                           AND name = N'ix_series_request_series_key')
    CREATE INDEX ix_series_request_series_key ON dbo.series_request_attributes (series_key);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.series_request_attributes')
                                           AND name = N'ix_series_request_spsid')
    CREATE INDEX ix_series_request_spsid ON dbo.series_request_attributes (scheduled_procedure_step_id);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.series_request_attributes')
                                           AND name = N'ix_series_request_rpid')
    CREATE INDEX ix_series_request_rpid ON dbo.series_request_attributes (requested_procedure_id);
GO

IF OBJECT_ID(N'dbo.instance', N'U') IS NULL
CREATE TABLE dbo.instance (
    instance_key BIGINT IDENTITY(1,1) NOT NULL,
    series_key BIGINT NOT NULL,
    sop_instance_uid NVARCHAR(64) NOT NULL,
    sop_class_uid NVARCHAR(64) NOT NULL,
    instance_number INT NULL,
    content_date NVARCHAR(8) NOT NULL,
    content_time NVARCHAR(16) NOT NULL,
    rows INT NULL,
    columns INT NULL,
    bits_allocated INT NULL,
    number_of_frames INT NULL,
    transfer_syntax_uid NVARCHAR(64) NOT NULL,
    blob_key NVARCHAR(200) NOT NULL,
    blob_size BIGINT NOT NULL,
    pixel_data_offset BIGINT NULL,
    pixel_data_length BIGINT NULL,
    layout_json NVARCHAR(MAX) NULL,
    metadata_json NVARCHAR(MAX) NOT NULL,
    created_at DATETIME2 NOT NULL,
    CONSTRAINT pk_instance PRIMARY KEY (instance_key),
    CONSTRAINT uq_instance_uid UNIQUE (sop_instance_uid),
    CONSTRAINT fk_instance_series FOREIGN KEY (series_key) REFERENCES dbo.series (series_key)
);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.instance')
                                           AND name = N'ix_instance_series_key')
    CREATE INDEX ix_instance_series_key ON dbo.instance (series_key, instance_number, instance_key);
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'dbo.instance')
                                           AND name = N'ix_instance_sop_class_uid')
    CREATE INDEX ix_instance_sop_class_uid ON dbo.instance (sop_class_uid);
GO

INSERT INTO dbo.schema_version (version, description, applied_at)
SELECT 1, N'initial schema', SYSUTCDATETIME()
WHERE NOT EXISTS (SELECT 1 FROM dbo.schema_version WHERE version = 1);
GO
