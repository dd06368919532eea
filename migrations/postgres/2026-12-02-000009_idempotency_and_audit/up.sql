-- Idempotency-Key: a write's fingerprint and its answer, per org, so a retry of
-- the same request (on any replica) gets the same answer without a second write.
CREATE TABLE idempotency_keys (
    org_id          TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    idem_key        TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    -- running | done | unknown (the last attempt did not learn whether it wrote)
    state           TEXT NOT NULL,
    locked_until    TIMESTAMP NOT NULL,
    status          INTEGER,
    location        TEXT,
    content_type    TEXT,
    body            TEXT,
    created_at      TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (org_id, idem_key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);

-- Every write through the API: who, what, on which targets, and how it ended.
CREATE TABLE audit_events (
    id              TEXT PRIMARY KEY NOT NULL,
    org_id          TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    at              TIMESTAMP NOT NULL,
    api_key_id      TEXT,
    api_key_prefix  TEXT,
    action          TEXT NOT NULL,
    -- The target ids, each between spaces (` con_… ctc_… `), so one is found by LIKE.
    target_ids      TEXT NOT NULL,
    provider        TEXT,
    status          INTEGER NOT NULL,
    request_id      TEXT NOT NULL
);
CREATE INDEX audit_events_org ON audit_events (org_id, id);
