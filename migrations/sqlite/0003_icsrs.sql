-- Individual Case Safety Reports: a small but real subset of ICH E2B(R3). Tenant-scoped by
-- construction (one database per tenant). Rows are never deleted: a deletion sets
-- `deleted_at`/`deleted_by`, and the audit trail keeps every old and new value.
CREATE TABLE icsrs (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    safety_report_id     TEXT    NOT NULL,              -- C.1.1 sender's safety report unique id
    receipt_date         TEXT    NOT NULL,              -- C.1.4 first received from source, YYYY-MM-DD
    serious              BOOLEAN NOT NULL,              -- E.i.3.2: any seriousness criterion
    seriousness_criteria TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(seriousness_criteria)),
    patient_initials     TEXT,                          -- D.1
    patient_age_value    INTEGER,                       -- D.2.2a
    patient_age_unit     TEXT,                          -- D.2.2b
    patient_sex          TEXT,                          -- D.5
    suspect_product      TEXT    NOT NULL,              -- G.k.2.2 medicinal product as reported
    reactions            TEXT    NOT NULL CHECK (json_valid(reactions)), -- E.i.1.1a / E.i.2.1b
    narrative            TEXT    NOT NULL DEFAULT '',   -- H.1 case narrative
    status               TEXT    NOT NULL,
    version              BIGINT  NOT NULL DEFAULT 1,    -- bumped by every change
    created_at           BIGINT  NOT NULL,              -- Unix ms, UTC
    created_by           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL,
    updated_by           BIGINT  NOT NULL,
    deleted_at           BIGINT,
    deleted_by           BIGINT
);
-- A report id names one live case; a deleted case frees it.
CREATE UNIQUE INDEX icsrs_report_id_live ON icsrs (safety_report_id) WHERE deleted_at IS NULL;
CREATE INDEX icsrs_status ON icsrs (status, id);

-- Audit records about a record rather than a user name it, e.g. `icsr:42`.
ALTER TABLE audit_events ADD COLUMN resource TEXT;
CREATE INDEX audit_events_resource ON audit_events (resource, id);

-- Cases are only ever soft-deleted.
CREATE TRIGGER icsrs_no_delete BEFORE DELETE ON icsrs
BEGIN
    SELECT RAISE(ABORT, 'icsrs are soft-deleted: set deleted_at');
END;
