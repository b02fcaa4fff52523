-- callgate schema, version 6 (PostgreSQL). Lanes: a claim serves jobs from the API first,
-- then the running batches in turn, each at its own rate (see the SQLite migration 0008).

ALTER TABLE groups ADD COLUMN lane BIGINT NOT NULL DEFAULT 0;
DROP INDEX groups_ready;
CREATE INDEX groups_ready ON groups (lane, seq) WHERE pending > 0 AND busy = 0;
DROP INDEX groups_wake;
CREATE INDEX groups_wake ON groups (lane, wake_at) WHERE pending > 0 AND busy = 0;

DROP INDEX jobs_claimable;
CREATE INDEX jobs_claimable ON jobs (group_key, batch_id, id, run_at) WHERE status IN ('queued', 'retrying');
CREATE INDEX jobs_batch_active ON jobs (batch_id) WHERE batch_id IS NOT NULL AND status IN ('queued', 'in_flight', 'retrying', 'held', 'uncertain');

ALTER TABLE batches ADD COLUMN ingested_at DOUBLE PRECISION;
UPDATE batches SET ingested_at = updated_at;

CREATE TABLE batch_meters (
    batch_id      BIGINT  PRIMARY KEY REFERENCES batches (id),
    tat           DOUBLE PRECISION NOT NULL DEFAULT 0,
    rate          DOUBLE PRECISION,
    changed_at    DOUBLE PRECISION NOT NULL DEFAULT 0,
    served        BIGINT  NOT NULL DEFAULT 0,
    throttled     INTEGER NOT NULL DEFAULT 0,
    throttled_at  DOUBLE PRECISION
);
INSERT INTO batch_meters (batch_id) SELECT id FROM batches;

CREATE OR REPLACE FUNCTION callgate_groups_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO groups AS g (group_key, pending, busy, wake_at, seq, lane)
    SELECT group_key, count(*), 0, min(run_at), min(id), min(coalesce(batch_id, 0))
    FROM new_jobs WHERE status IN ('queued', 'retrying')
    GROUP BY group_key ORDER BY group_key
    ON CONFLICT (group_key) DO UPDATE SET
        seq = CASE WHEN g.pending = 0 THEN excluded.seq ELSE g.seq END,
        wake_at = CASE WHEN g.pending = 0 OR g.wake_at IS NULL OR excluded.wake_at < g.wake_at
                       THEN excluded.wake_at ELSE g.wake_at END,
        lane = CASE WHEN g.pending = 0 OR excluded.lane = 0 THEN excluded.lane ELSE g.lane END,
        pending = g.pending + excluded.pending;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION callgate_groups_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH moved AS (
        SELECT n.group_key,
               sum(CASE WHEN n.status IN ('queued', 'retrying') THEN 1 ELSE 0 END
                   - CASE WHEN o.status IN ('queued', 'retrying') THEN 1 ELSE 0 END) AS pending,
               bool_or(n.status = 'in_flight') AS taken,
               bool_or(o.status = 'in_flight') AS freed,
               min(n.run_at) FILTER (WHERE n.status IN ('queued', 'retrying')) AS run_at,
               min(n.id) FILTER (WHERE n.status IN ('queued', 'retrying')) AS head,
               min(coalesce(n.batch_id, 0)) FILTER (WHERE n.status IN ('queued', 'retrying'))
                   AS lane
        FROM new_jobs n JOIN old_jobs o ON o.id = n.id
        WHERE n.status IS DISTINCT FROM o.status
        GROUP BY n.group_key
    ), locked AS (
        SELECT g.group_key FROM groups g JOIN moved m ON m.group_key = g.group_key
        ORDER BY g.group_key FOR UPDATE OF g
    )
    UPDATE groups g SET
        seq = CASE WHEN g.pending = 0 AND m.head IS NOT NULL THEN m.head ELSE g.seq END,
        wake_at = CASE WHEN m.run_at IS NULL THEN g.wake_at
                       WHEN g.pending = 0 OR g.wake_at IS NULL OR m.run_at < g.wake_at
                       THEN m.run_at
                       ELSE g.wake_at END,
        lane = CASE WHEN m.taken THEN 0
                    WHEN m.lane IS NULL THEN g.lane
                    WHEN g.pending = 0 OR m.lane = 0 THEN m.lane
                    ELSE g.lane END,
        busy = CASE WHEN m.taken THEN 1 WHEN m.freed THEN 0 ELSE g.busy END,
        pending = g.pending + m.pending
    FROM moved m JOIN locked l ON l.group_key = m.group_key
    WHERE g.group_key = m.group_key;
    RETURN NULL;
END $$;
