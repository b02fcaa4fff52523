-- callgate schema, version 11 (sqlite): what the metrics and the alerts read (issue 17).
-- Each running worker's last heartbeat, written with its lease renewals (every lease/3),
-- not per job; a worker that stops removes its row, and rows a day old are pruned.
CREATE TABLE workers (
    worker_id     TEXT PRIMARY KEY,
    started_at    REAL NOT NULL,
    heartbeat_at  REAL NOT NULL
);
CREATE INDEX workers_heartbeat ON workers (heartbeat_at);
-- Alerts: one row per raise, open while resolved_at is NULL; the unique index lets one
-- alert of a rule and subject be open at a time, whichever process raises it.
CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    rule         TEXT NOT NULL,
    subject      TEXT NOT NULL DEFAULT '',
    detail       TEXT NOT NULL,
    raised_at    REAL NOT NULL,
    resolved_at  REAL
);
CREATE UNIQUE INDEX alerts_open ON alerts (rule, subject) WHERE resolved_at IS NULL;
-- The gauges, by index whatever the history: the oldest job waiting for a claim, and the
-- dead letters of the last hour.
CREATE INDEX jobs_waiting ON jobs (run_at) WHERE status IN ('queued', 'retrying');
CREATE INDEX jobs_failed_at ON jobs (updated_at) WHERE status = 'failed';
