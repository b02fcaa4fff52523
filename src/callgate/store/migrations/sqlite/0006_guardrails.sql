-- callgate schema, version 6 (SQLite): guardrails. The stored allowlist (besides the
-- configured one), the suppression list, the anomaly breaker and its history.

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
    changed_by  TEXT
);

CREATE TABLE breaker_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    action      TEXT NOT NULL,     -- tripped | reset
    reason      TEXT,
    detail      TEXT,
    actor       TEXT NOT NULL,     -- callgate (automatic) or who asked
    at          REAL NOT NULL
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

INSERT OR IGNORE INTO breaker (name, open) VALUES ('global', 0);
