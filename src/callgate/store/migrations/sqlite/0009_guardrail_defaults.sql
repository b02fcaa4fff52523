-- callgate schema, version 9 (sqlite): guardrails that fit the work they protect.
-- Caps count jobs that reached the provider, once each: reached_at is when the job's first
-- counted attempt started (a retry is not a new message), read through an index that the
-- cap's window bounds. The breaker names the rule that tripped it. Each provider has a
-- circuit that opens when it refuses the credentials or fails for a while: its jobs wait
-- (held, provider_unavailable) without using attempts until a probe gets through.

ALTER TABLE jobs ADD COLUMN reached_at REAL;
UPDATE jobs SET reached_at = (
    SELECT min(a.started_at) FROM attempts a WHERE a.job_id = jobs.id AND a.counted = 1);
CREATE INDEX jobs_reached ON jobs (to_number, kind, reached_at) WHERE reached_at IS NOT NULL;
CREATE INDEX jobs_held ON jobs (reason, kind, id) WHERE status = 'held';

ALTER TABLE breaker ADD COLUMN rule TEXT;
ALTER TABLE breaker_log ADD COLUMN rule TEXT;

CREATE TABLE provider_circuits (
    name        TEXT PRIMARY KEY,             -- twilio | signalwire | telnyx | simulator
    open        INTEGER NOT NULL DEFAULT 0,
    fault       TEXT,                         -- auth | outage: why it opened
    detail      TEXT,                         -- what the provider said, for a person
    opened_at   REAL,
    probe_at    REAL,                         -- when the next probe may be sent
    probes      INTEGER NOT NULL DEFAULT 0,   -- probes that failed since it opened
    probe_job   INTEGER,                      -- the job sent as the probe, while under way
    changed_at  REAL
);
