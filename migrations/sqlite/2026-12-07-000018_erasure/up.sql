-- Erasure: a person erased leaves only keyed hashes of its identifiers (HMAC
-- with the service's secret key, the org and the kind in the message), which
-- every way into the store checks, so the person does not come back.
-- Each org's key of those hashes: random, sealed like credentials (so a key
-- rotation re-seals it, and the hashes keep matching).
CREATE TABLE org_secrets (
    org_id          TEXT PRIMARY KEY NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    identifier_key  TEXT NOT NULL
);

CREATE TABLE suppressions (
    -- sup_<ulid>
    id           TEXT PRIMARY KEY NOT NULL,
    org_id       TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    -- the kinds of identifier held, comma-separated (phone,lid,email)
    kinds        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    api_key_id   TEXT,
    request_id   TEXT,
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX suppressions_org ON suppressions (org_id, id);

CREATE TABLE suppressed_identifiers (
    org_id          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    -- lowercase hex of the HMAC-SHA256
    hash            TEXT NOT NULL,
    suppression_id  TEXT NOT NULL REFERENCES suppressions(id) ON DELETE CASCADE,
    PRIMARY KEY (org_id, kind, hash, suppression_id)
);
CREATE INDEX suppressed_identifiers_suppression ON suppressed_identifiers (suppression_id);

-- Records a sync skipped because they hold a suppressed identifier.
ALTER TABLE sync_runs ADD COLUMN suppressed BIGINT NOT NULL DEFAULT 0;
