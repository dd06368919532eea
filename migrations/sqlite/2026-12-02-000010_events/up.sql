-- The change feed, an outbox: every change to a contact or person appends its
-- event in the change's own transaction. `seq` is the org's, given out under the
-- org's lock, so events are in commit order and a reader following the feed
-- never skips one that commits late. No foreign key to `orgs`: a sync page
-- appends thousands of events, and PostgreSQL checks a foreign key row by row
-- (measured: 1.29-1.35 x of the 100k sync's floor with it, 1.13-1.14 x
-- without); an append-only log pruned by time needs none (orgs are never deleted).
CREATE TABLE events (
    org_id          TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    event_type      TEXT NOT NULL,
    occurred_at     TIMESTAMP NOT NULL,
    connection_id   TEXT,
    data            TEXT NOT NULL,
    PRIMARY KEY (org_id, seq)
);
CREATE INDEX events_occurred ON events (occurred_at);

-- The last event number given out per org.
CREATE TABLE event_counters (
    org_id          TEXT PRIMARY KEY NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    last_seq        INTEGER NOT NULL
);
