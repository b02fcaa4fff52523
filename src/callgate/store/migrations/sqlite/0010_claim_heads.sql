-- callgate schema, version 10 (sqlite): claims whose work does not grow with history.
-- The head of a group in the API's lane (its oldest claimable job not of a batch) is
-- the first entry of this index for the group: equality on group_key, then id, and only
-- claimable jobs of no batch in it. Without it a planner had to sort the group's rows or
-- walk the primary key through every finished job in id order (PostgreSQL did, with
-- 10,000 delivered jobs: 3 s per claim). A batch lane's head is the first entry of
-- jobs_claimable for (group_key, batch_id).
CREATE INDEX jobs_api_heads ON jobs (group_key, id) WHERE batch_id IS NULL AND status IN ('queued', 'retrying');
