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
-- dead letters of the last hour. jobs_waiting is on run_at + 0, not run_at: only the
-- gauges' queries, which say run_at + 0, can use it (on run_at, PostgreSQL's planner took
-- it for the claim's head lookups and walked every waiting job: 2.6x the buffers).
CREATE INDEX jobs_waiting ON jobs ((run_at + 0)) WHERE status IN ('queued', 'retrying');
CREATE INDEX jobs_failed_at ON jobs (updated_at) WHERE status = 'failed';
