-- callgate schema, version 5 (sqlite). Batches: a file of rows submitted together, metered
-- at its own rate; each job knows its batch and input line, and the rows that are not a
-- job (invalid, duplicate) are kept for the report.

ALTER TABLE jobs ADD COLUMN batch_id INTEGER;
ALTER TABLE jobs ADD COLUMN line_no INTEGER;

CREATE TABLE batches (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT,
    kind            TEXT    NOT NULL,              -- the default kind of rows without an api column
    status          TEXT    NOT NULL,              -- running | paused | canceled | completed
    rate            REAL,                          -- calls per second on top of the global meter
    tat             REAL,                          -- the batch's GCRA state, like the meter row
    strict          INTEGER NOT NULL DEFAULT 0,
    total_rows      INTEGER NOT NULL DEFAULT 0,    -- input rows read
    queued_rows     INTEGER NOT NULL DEFAULT 0,    -- rows that became (or are) a job
    invalid_rows    INTEGER NOT NULL DEFAULT 0,
    duplicate_rows  INTEGER NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    completed_at    REAL,
    api_key_id      TEXT
);
CREATE INDEX batches_running ON batches (id) WHERE status = 'running';

-- Input rows that are not a job of their own: invalid, or a duplicate of an earlier row
-- (duplicate_of) or of a job submitted before (job_id).
CREATE TABLE batch_errors (
    batch_id      INTEGER NOT NULL REFERENCES batches (id),
    line          INTEGER NOT NULL,
    column_name   TEXT,
    code          TEXT    NOT NULL,
    message       TEXT    NOT NULL,
    duplicate_of  INTEGER,
    job_id        INTEGER,
    PRIMARY KEY (batch_id, line)
);

CREATE INDEX jobs_batch ON jobs (batch_id, line_no) WHERE batch_id IS NOT NULL;
