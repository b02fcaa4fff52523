-- callgate schema, version 7 (SQLite). Webhook events that belong to no job
-- (breaker.tripped): written in the transaction of the change they report, delivered to
-- the default endpoint (CALLGATE_WEBHOOK_URL) with the same signing and retry schedule.

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
