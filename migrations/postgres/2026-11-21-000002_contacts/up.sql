-- Canonical contacts, one per (connection, remote id). Columns for what is filtered
-- or sorted on; the rest of the canonical record as JSON text.
CREATE TABLE contacts (
    id                  TEXT PRIMARY KEY NOT NULL,
    org_id              TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    connection_id       TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    provider            TEXT NOT NULL,
    remote_id           TEXT NOT NULL,
    person_id           TEXT,
    -- lowercased names, phones and emails, for `q`
    search_text         TEXT NOT NULL,
    record              TEXT NOT NULL,
    remote_data         TEXT,
    content_hash        TEXT NOT NULL,
    remote_updated_at   TIMESTAMP,
    fetched_at          TIMESTAMP NOT NULL,
    remote_was_deleted  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL,
    UNIQUE (connection_id, remote_id)
);
-- The list order (ids sort by creation) within a tenant.
CREATE INDEX contacts_org_order ON contacts (org_id, id);
CREATE INDEX contacts_org_updated ON contacts (org_id, updated_at);

-- Lookup keys of a contact: kind `phone` (E.164), `lid`, `label`, `membership`.
CREATE TABLE contact_keys (
    contact_id  TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (contact_id, kind, value)
);
CREATE INDEX contact_keys_lookup ON contact_keys (kind, value);
