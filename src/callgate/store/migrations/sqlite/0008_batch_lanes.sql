-- callgate schema, version 8 (sqlite). Lanes: a claim serves jobs from the API first, then
-- the running batches in turn, each at its own rate. Each group says in which lane to look
-- for it (0: the API's jobs, and groups to sort out; else its batch id); batch_meters holds
-- each batch's GCRA state, its round-robin turn and its 429 count; a batch knows when all
-- its rows are in (ingested_at), so that it can be completed.

ALTER TABLE groups ADD COLUMN lane INTEGER NOT NULL DEFAULT 0;
DROP INDEX groups_ready;
CREATE INDEX groups_ready ON groups (lane, seq) WHERE pending > 0 AND busy = 0;
DROP INDEX groups_wake;
CREATE INDEX groups_wake ON groups (lane, wake_at) WHERE pending > 0 AND busy = 0;

DROP INDEX jobs_claimable;
CREATE INDEX jobs_claimable ON jobs (group_key, batch_id, id, run_at) WHERE status IN ('queued', 'retrying');
CREATE INDEX jobs_batch_active ON jobs (batch_id) WHERE batch_id IS NOT NULL AND status IN ('queued', 'in_flight', 'retrying', 'held', 'uncertain');

ALTER TABLE batches ADD COLUMN ingested_at REAL;
UPDATE batches SET ingested_at = updated_at;

CREATE TABLE batch_meters (
    batch_id      INTEGER PRIMARY KEY REFERENCES batches (id),
    tat           REAL    NOT NULL DEFAULT 0,   -- GCRA: the batch's next slot
    rate          REAL,                         -- lowered after repeated 429s (else batches.rate)
    changed_at    REAL    NOT NULL DEFAULT 0,   -- when the rate was lowered
    served        INTEGER NOT NULL DEFAULT 0,   -- round-robin: the batch's last turn
    throttled     INTEGER NOT NULL DEFAULT 0,   -- 429 answers since throttled_at
    throttled_at  REAL
);
INSERT INTO batch_meters (batch_id) SELECT id FROM batches;

DROP TRIGGER jobs_group_insert;
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

DROP TRIGGER jobs_group_status;
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
