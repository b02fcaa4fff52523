-- callgate schema, version 3 (SQLite). The outbox marks the events still to fan out
-- into webhook deliveries instead of keeping a cursor (on PostgreSQL, concurrent
-- writers could commit an event behind a cursor); the meter row always exists.

ALTER TABLE events ADD COLUMN fanout INTEGER NOT NULL DEFAULT 0;

UPDATE events SET fanout = 1
WHERE type IN ('job.delivered', 'job.failed', 'job.expired', 'job.blocked', 'job.canceled',
               'job.retrying')
  AND id > coalesce((SELECT event_id FROM outbox_cursor WHERE name = 'webhooks'), 0);

CREATE INDEX events_fanout ON events (id) WHERE fanout = 1;

DROP TABLE outbox_cursor;

INSERT OR IGNORE INTO meter (name, tat, rate, changed_at) VALUES ('global', 0, NULL, 0);
