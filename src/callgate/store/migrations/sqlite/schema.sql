-- callgate schema (SQLite): the result of every migration, for reading and for the equivalence test.

CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,  -- submit order: FIFO key
    kind              TEXT    NOT NULL,
    to_number         TEXT,
    group_key         TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    payload           TEXT    NOT NULL,                   -- JSON
    attempts          INTEGER NOT NULL DEFAULT 0,         -- counted attempts
    attempt_no        INTEGER NOT NULL DEFAULT 0,         -- last attempt row's number
    max_attempts      INTEGER,
    reason            TEXT,
    detail            TEXT,
    run_at            REAL    NOT NULL,
    not_before        REAL,
    expires_at        REAL,
    strict_order      INTEGER NOT NULL DEFAULT 0,
    idempotency_key   TEXT,
    callback_url      TEXT,
    metadata          TEXT,                               -- JSON
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    worker_id         TEXT,
    lease_expires_at  REAL,
    provider_ref      TEXT,
    created_at        REAL    NOT NULL,
    updated_at        REAL    NOT NULL,
    api_key_id        TEXT,
    batch_id          INTEGER,                            -- batches.id, for a batch's row
    line_no           INTEGER,                           -- its line in the batch file
    reached_at        REAL                    -- its first counted attempt's start (caps)
);

-- Invariant 2: at most one job of a group in flight, enforced by the database itself.
CREATE UNIQUE INDEX jobs_one_in_flight_per_group ON jobs (group_key) WHERE status = 'in_flight';
-- The head of each group: claimable jobs in submit order.
CREATE INDEX jobs_claimable ON jobs (group_key, batch_id, id, run_at) WHERE status IN ('queued', 'retrying');
-- A group's head in the API's lane: its first entry for the group (migration 0010).
CREATE INDEX jobs_api_heads ON jobs (group_key, id) WHERE batch_id IS NULL AND status IN ('queued', 'retrying');
-- Strict-order jobs that may block their group while they wait.
CREATE INDEX jobs_strict ON jobs (group_key, id) WHERE strict_order = 1 AND status IN ('queued', 'retrying');
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE status = 'in_flight';
CREATE INDEX jobs_active ON jobs (status, id) WHERE status IN ('queued', 'in_flight', 'retrying', 'held', 'uncertain');
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL AND status IN ('queued', 'retrying', 'held');
CREATE INDEX jobs_to ON jobs (to_number, id);

-- One row per group with something to send: lets a claim visit groups, not jobs.
-- Kept by the triggers below; jobs stays the truth.
CREATE TABLE groups (
    group_key  TEXT    PRIMARY KEY,
    pending    INTEGER NOT NULL DEFAULT 0,  -- jobs queued or retrying
    busy       INTEGER NOT NULL DEFAULT 0,  -- 1 while a job is in flight
    wake_at    REAL,                        -- nothing is claimable before this (lower bound)
    seq        INTEGER NOT NULL DEFAULT 0,  -- about the id of its head: FIFO across groups
    lane       INTEGER NOT NULL DEFAULT 0   -- where a claim looks for it: 0 API jobs (or to
                                            -- sort out), else its head's batch
) WITHOUT ROWID;
CREATE INDEX groups_ready ON groups (lane, seq) WHERE pending > 0 AND busy = 0;
CREATE INDEX groups_wake ON groups (lane, wake_at) WHERE pending > 0 AND busy = 0;

CREATE TRIGGER jobs_group_insert AFTER INSERT ON jobs
WHEN new.status IN ('queued', 'retrying')
BEGIN
    INSERT INTO groups (group_key, pending, busy, wake_at, seq, lane)
    VALUES (new.group_key, 1, 0, new.run_at, new.id, coalesce(new.batch_id, 0))
    ON CONFLICT (group_key) DO UPDATE SET
        seq = CASE WHEN pending = 0 THEN excluded.seq ELSE seq END,
        wake_at = CASE WHEN pending = 0 OR wake_at IS NULL OR excluded.wake_at < wake_at
                       THEN excluded.wake_at ELSE wake_at END,
        lane = CASE WHEN pending = 0 OR excluded.lane = 0 THEN excluded.lane ELSE lane END,
        pending = pending + 1;
END;

CREATE TRIGGER jobs_group_status AFTER UPDATE OF status ON jobs
WHEN old.status IS NOT new.status
BEGIN
    INSERT INTO groups (group_key, pending, busy, wake_at, seq, lane)
    VALUES (new.group_key,
            new.status IN ('queued', 'retrying'),
            new.status = 'in_flight',
            new.run_at,
            new.id,
            coalesce(new.batch_id, 0))
    ON CONFLICT (group_key) DO UPDATE SET
        seq = CASE WHEN pending = 0 AND new.status IN ('queued', 'retrying') THEN excluded.seq
                   ELSE seq END,
        wake_at = CASE WHEN new.status NOT IN ('queued', 'retrying') THEN wake_at
                       WHEN pending = 0 OR wake_at IS NULL OR new.run_at < wake_at THEN new.run_at
                       ELSE wake_at END,
        lane = CASE WHEN new.status = 'in_flight' THEN 0
                    WHEN new.status NOT IN ('queued', 'retrying') THEN lane
                    WHEN pending = 0 OR excluded.lane = 0 THEN excluded.lane
                    ELSE lane END,
        busy = CASE WHEN new.status = 'in_flight' THEN 1
                    WHEN old.status = 'in_flight' THEN 0
                    ELSE busy END,
        pending = pending - (old.status IN ('queued', 'retrying'))
                          + (new.status IN ('queued', 'retrying'));
END;

CREATE TRIGGER jobs_group_run_at AFTER UPDATE OF run_at ON jobs
WHEN old.status IS new.status AND new.status IN ('queued', 'retrying') AND new.run_at < old.run_at
BEGIN
    UPDATE groups SET wake_at = min(coalesce(wake_at, new.run_at), new.run_at)
    WHERE group_key = new.group_key;
END;

CREATE TABLE attempts (
    job_id        INTEGER NOT NULL REFERENCES jobs (id),
    number        INTEGER NOT NULL,             -- 1, 2, ... per job, uncounted ones too
    state         TEXT    NOT NULL,             -- sending | pending | done
    counted       INTEGER NOT NULL DEFAULT 1,   -- 0: a 429, "not an attempt"
    worker_id     TEXT,
    started_at    REAL    NOT NULL,
    ended_at      REAL,
    outcome       TEXT,
    provider_ref  TEXT,
    error_code    TEXT,
    error_message TEXT,
    PRIMARY KEY (job_id, number)
) WITHOUT ROWID;
CREATE INDEX attempts_provider_ref ON attempts (provider_ref) WHERE provider_ref IS NOT NULL;

-- The outbox: one row per state change, written in the change's transaction.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      INTEGER NOT NULL REFERENCES jobs (id),
    type        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    reason      TEXT,
    detail      TEXT,
    created_at  REAL    NOT NULL,
    attempts    INTEGER,
    fanout      INTEGER NOT NULL DEFAULT 0  -- 1: a webhook type not yet fanned out
);
CREATE INDEX events_job ON events (job_id, id);
CREATE INDEX events_fanout ON events (id) WHERE fanout = 1;

CREATE TABLE idempotency_keys (
    scope        TEXT    NOT NULL,  -- who may reuse the key (an API key id; '' locally)
    key          TEXT    NOT NULL,
    job_id       INTEGER NOT NULL REFERENCES jobs (id),
    fingerprint  TEXT    NOT NULL,  -- digest of the request, to refuse a reused key
    created_at   REAL    NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;

-- The meter: one GCRA row shared by every worker.
CREATE TABLE meter (
    name        TEXT PRIMARY KEY,
    tat         REAL NOT NULL,
    rate        REAL,                -- current rate after AIMD; NULL: unlimited
    changed_at  REAL NOT NULL
);


-- API keys: only a SHA-256 of the secret token is stored (tokens are 32 random bytes).
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,   -- public id, also the scope of idempotency keys
    name        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,      -- the token's first characters, to recognise it
    created_at  REAL NOT NULL,
    revoked_at  REAL
);

-- Signing secrets (whsec_...) generated by callgate when none are configured.
CREATE TABLE webhook_secrets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    secret      TEXT NOT NULL,
    created_at  REAL NOT NULL
);

-- One row per (event, endpoint): the webhook outbox's delivery state.
CREATE TABLE webhook_deliveries (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id          INTEGER NOT NULL REFERENCES events (id),
    job_id            INTEGER NOT NULL,
    url               TEXT    NOT NULL,
    format            TEXT    NOT NULL DEFAULT 'standard',  -- standard | fax_gateway
    status            TEXT    NOT NULL DEFAULT 'pending',   -- pending | delivered | failed | stopped
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   REAL    NOT NULL,
    last_status_code  INTEGER,
    last_error        TEXT,
    created_at        REAL    NOT NULL,
    updated_at        REAL    NOT NULL,
    delivered_at      REAL
);
CREATE UNIQUE INDEX webhook_deliveries_event_url ON webhook_deliveries (event_id, url);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (job_id, url, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_status ON webhook_deliveries (status, id);

-- Endpoints that answered 410 Gone: nothing more is sent to them.
CREATE TABLE webhook_gone (
    url  TEXT PRIMARY KEY,
    at   REAL NOT NULL
) WITHOUT ROWID;

-- guardrails (migration 0006)
CREATE TABLE allowlist (
    number      TEXT PRIMARY KEY,  -- E.164, or a pattern like +1202555*
    note        TEXT,
    created_at  REAL NOT NULL
);
CREATE TABLE suppressions (
    number      TEXT NOT NULL,
    kind        TEXT NOT NULL,     -- fax | sms | call | request, or * for every kind
    reason      TEXT NOT NULL,     -- unsubscribed | landline | manual | ...
    source      TEXT NOT NULL,     -- error_rule | manual
    detail      TEXT,
    created_at  REAL NOT NULL,
    PRIMARY KEY (number, kind)
);

CREATE TABLE breaker (
    name        TEXT PRIMARY KEY,
    open        INTEGER NOT NULL DEFAULT 0,
    reason      TEXT,
    detail      TEXT,
    changed_at  REAL,
    changed_by  TEXT,
    rule        TEXT               -- the rule that tripped it (baseline, warmup, ceiling, manual)
);

CREATE TABLE breaker_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    action      TEXT NOT NULL,     -- tripped | reset
    reason      TEXT,
    detail      TEXT,
    actor       TEXT NOT NULL,     -- callgate (automatic) or who asked
    at          REAL NOT NULL,
    rule        TEXT
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      INTEGER NOT NULL,
    attempt     INTEGER,            -- the attempt's number (NULL: a status poll of none)
    at          REAL NOT NULL,
    method      TEXT    NOT NULL,
    url         TEXT    NOT NULL,
    status      INTEGER,            -- HTTP status (NULL: no answer)
    request     TEXT,               -- the body sent, credentials redacted
    response    TEXT,               -- the body received
    duration    REAL NOT NULL,
    error       TEXT
);
CREATE INDEX audit_log_job ON audit_log (job_id, id);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE INDEX attempts_started ON attempts (started_at);

-- Webhook events that belong to no job (breaker.tripped), delivered to CALLGATE_WEBHOOK_URL.
CREATE TABLE system_webhooks (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    type              TEXT    NOT NULL,
    data              TEXT    NOT NULL,             -- JSON
    status            TEXT    NOT NULL DEFAULT 'pending',   -- pending | delivered | failed
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   REAL    NOT NULL,
    last_status_code  INTEGER,
    last_error        TEXT,
    created_at        REAL    NOT NULL,
    delivered_at      REAL
);
CREATE INDEX system_webhooks_due ON system_webhooks (next_attempt_at) WHERE status = 'pending';
-- Batches (see the batches migration).
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
    api_key_id      TEXT,
    ingested_at     REAL                           -- when the last row was read
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
CREATE INDEX jobs_batch_active ON jobs (batch_id) WHERE batch_id IS NOT NULL AND status IN ('queued', 'in_flight', 'retrying', 'held', 'uncertain');

-- Each batch's meter (GCRA, like the meter row), round-robin turn and 429 count.
CREATE TABLE batch_meters (
    batch_id      INTEGER PRIMARY KEY REFERENCES batches (id),
    tat           REAL    NOT NULL DEFAULT 0,
    rate          REAL,
    changed_at    REAL    NOT NULL DEFAULT 0,
    served        INTEGER NOT NULL DEFAULT 0,
    throttled     INTEGER NOT NULL DEFAULT 0,
    throttled_at  REAL
);

-- Caps count jobs that reached the provider, once each (migration 0009).
CREATE INDEX jobs_reached ON jobs (to_number, kind, reached_at) WHERE reached_at IS NOT NULL;
CREATE INDEX jobs_held ON jobs (reason, kind, id) WHERE status = 'held';

-- One circuit per provider: open while it refuses the credentials or fails for a while.
CREATE TABLE provider_circuits (
    name        TEXT PRIMARY KEY,             -- twilio | signalwire | telnyx | simulator
    open        INTEGER NOT NULL DEFAULT 0,
    fault       TEXT,                         -- auth | outage: why it opened
    detail      TEXT,                         -- what the provider said, for a person
    opened_at   REAL,
    probe_at    REAL,                      -- when the next probe may be sent
    probes      INTEGER NOT NULL DEFAULT 0,   -- probes that failed since it opened
    probe_job   INTEGER,                   -- the job sent as the probe, while under way
    changed_at  REAL
);

-- What the metrics and the alerts read (see the observability migration).
CREATE TABLE workers (
    worker_id     TEXT PRIMARY KEY,
    started_at    REAL NOT NULL,
    heartbeat_at  REAL NOT NULL
);
CREATE INDEX workers_heartbeat ON workers (heartbeat_at);
CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    rule         TEXT NOT NULL,
    subject      TEXT NOT NULL DEFAULT '',
    detail       TEXT NOT NULL,
    raised_at    REAL NOT NULL,
    resolved_at  REAL
);
CREATE UNIQUE INDEX alerts_open ON alerts (rule, subject) WHERE resolved_at IS NULL;
CREATE INDEX jobs_waiting ON jobs ((run_at + 0)) WHERE status IN ('queued', 'retrying');
CREATE INDEX jobs_failed_at ON jobs (updated_at) WHERE status = 'failed';
