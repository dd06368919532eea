-- What the service knows of a connection's health and what an operator asked of
-- its syncs, apart from `connections` (whose every change invalidates the
-- connection's cached copies and adapters): paused or not, when its credentials
-- were last accepted, the last error and the failures since the last success.
CREATE TABLE connection_status (
    connection_id           TEXT PRIMARY KEY NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    sync_paused             BOOLEAN NOT NULL DEFAULT FALSE,
    credentials_verified_at TIMESTAMP,
    -- `credentials` (the provider refused them) or `upstream` (anything else)
    last_error_kind         TEXT,
    last_error_message      TEXT,
    last_error_at           TIMESTAMP,
    -- failures since the last success
    error_count             BIGINT NOT NULL DEFAULT 0,
    last_success_at         TIMESTAMP
);
-- Connections made before: they have been syncing, so their credentials count as checked.
INSERT INTO connection_status (connection_id, credentials_verified_at)
    SELECT id, created_at FROM connections;

-- An operator's request that the running run stop after the page being written
-- (on the lease, which exists exactly while a run does).
ALTER TABLE sync_leases ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
