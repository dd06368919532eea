-- Reconciliation runs and their history.
CREATE TABLE sync_runs (
    id                  TEXT PRIMARY KEY NOT NULL,
    org_id              TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    connection_id       TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    trigger_kind        TEXT NOT NULL,
    status              TEXT NOT NULL,
    created             BIGINT NOT NULL DEFAULT 0,
    updated             BIGINT NOT NULL DEFAULT 0,
    unchanged           BIGINT NOT NULL DEFAULT 0,
    deleted             BIGINT NOT NULL DEFAULT 0,
    pages               BIGINT NOT NULL DEFAULT 0,
    upstream_requests   BIGINT NOT NULL DEFAULT 0,
    throttled_429       BIGINT NOT NULL DEFAULT 0,
    limiter_wait_ms     BIGINT NOT NULL DEFAULT 0,
    error               TEXT,
    started_at          TIMESTAMP NOT NULL,
    finished_at         TIMESTAMP
);
CREATE INDEX sync_runs_org_order ON sync_runs (org_id, id);
CREATE INDEX sync_runs_connection ON sync_runs (connection_id, id);

-- At most one run per connection, across processes: a lease that expires, so the
-- successor of a crashed run can take over.
CREATE TABLE sync_leases (
    connection_id   TEXT PRIMARY KEY NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    run_id          TEXT NOT NULL,
    holder          TEXT NOT NULL,
    expires_at      TIMESTAMP NOT NULL
);

-- The remote ids a run has seen, on disk so memory stays flat; deletion detection
-- compares against it once the listing is complete.
CREATE TABLE sync_seen (
    run_id      TEXT NOT NULL,
    remote_id   TEXT NOT NULL,
    PRIMARY KEY (run_id, remote_id)
);

-- Hash of a thin list item (the Gateway's), to skip detail calls for unchanged ones.
ALTER TABLE contacts ADD COLUMN list_hash TEXT;
