-- The deletion guard: a run whose deletion check would mark too many of a
-- connection's live contacts deleted holds them for an operator instead.
ALTER TABLE sync_runs ADD COLUMN deletions_held BIGINT NOT NULL DEFAULT 0;

-- One row per run that ended holding deletions: the hold's state, and how it
-- ended (applied or discarded by an operator, released by a later run that saw
-- the contacts again, or superseded by a later run that holds them in its turn).
CREATE TABLE deletion_holds (
    run_id         TEXT PRIMARY KEY NOT NULL REFERENCES sync_runs(id) ON DELETE CASCADE,
    org_id         TEXT NOT NULL,
    connection_id  TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    -- held | applied | discarded | released | superseded
    state          TEXT NOT NULL,
    -- how many the run held when it ended
    held           BIGINT NOT NULL,
    -- when the connection's hold began (an earlier run's, carried over)
    since          TIMESTAMP NOT NULL,
    reason         TEXT NOT NULL,
    resolved_at    TIMESTAMP,
    -- the API key that applied or discarded it, or the run that released or superseded it
    resolved_by    TEXT,
    -- how many an apply marked deleted
    applied        BIGINT
);
CREATE INDEX deletion_holds_connection ON deletion_holds (connection_id, state);

-- The contacts a connection's hold keeps from being marked deleted: one row per
-- contact, naming the run that holds it now.
CREATE TABLE held_deletions (
    connection_id  TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    contact_id     TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    PRIMARY KEY (connection_id, contact_id)
);
CREATE INDEX held_deletions_run ON held_deletions (run_id, contact_id);
