-- callgate schema, version 7 (PostgreSQL): guardrails that fit the work they protect.
-- Caps count jobs that reached the provider, once each: reached_at is when the job's first
-- counted attempt started (a retry is not a new message), read through an index that the
-- cap's window bounds. The breaker names the rule that tripped it. Each provider has a
-- circuit that opens when it refuses the credentials or fails for a while: its jobs wait
-- (held, provider_unavailable) without using attempts until a probe gets through.

ALTER TABLE jobs ADD COLUMN reached_at DOUBLE PRECISION;
UPDATE jobs SET reached_at = (
    SELECT min(a.started_at) FROM attempts a WHERE a.job_id = jobs.id AND a.counted = 1)
WHERE EXISTS (SELECT 1 FROM attempts a WHERE a.job_id = jobs.id AND a.counted = 1);
CREATE INDEX jobs_reached ON jobs (to_number, kind, reached_at) WHERE reached_at IS NOT NULL;
CREATE INDEX jobs_held ON jobs (reason, kind, id) WHERE status = 'held';

ALTER TABLE breaker ADD COLUMN rule TEXT;
ALTER TABLE breaker_log ADD COLUMN rule TEXT;

CREATE TABLE provider_circuits (
    name        TEXT PRIMARY KEY,
    open        INTEGER NOT NULL DEFAULT 0,
    fault       TEXT,
    detail      TEXT,
    opened_at   DOUBLE PRECISION,
    probe_at    DOUBLE PRECISION,
    probes      INTEGER NOT NULL DEFAULT 0,
    probe_job   BIGINT,
    changed_at  DOUBLE PRECISION
);
