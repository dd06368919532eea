-- Identity control: the manual operations on people (merge, split, block,
-- unblock, undo), each with who made it, when and why, and what its undo
-- restores.
CREATE TABLE identity_operations (
    -- idop_<ulid>: operations sort by when they were made
    id           TEXT PRIMARY KEY NOT NULL,
    org_id       TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    -- merge | split | block | unblock | undo
    kind         TEXT NOT NULL,
    -- merge: the surviving person; split: the person split; block/unblock:
    -- the blocked value's id; undo: the operation undone
    subject_id   TEXT NOT NULL,
    -- merge: the absorbed person; split: the new person
    other_id     TEXT,
    reason       TEXT NOT NULL,
    api_key_id   TEXT,
    request_id   TEXT,
    created_at   TIMESTAMP NOT NULL,
    -- the undo that reverted it
    undone_by    TEXT,
    -- JSON: each contact's person before, the people's creation times, the
    -- blocked value: what an undo puts back
    before       TEXT NOT NULL
);
CREATE INDEX identity_operations_org ON identity_operations (org_id, id);

-- The contacts an operation in force holds: those of one part stay one person,
-- and the parts of one operation (a split's two) stay apart, whatever their
-- identifiers say. Rows go when the operation is undone.
CREATE TABLE identity_bonds (
    operation_id TEXT NOT NULL REFERENCES identity_operations(id) ON DELETE CASCADE,
    org_id       TEXT NOT NULL,
    contact_id   TEXT NOT NULL,
    part         INTEGER NOT NULL,
    PRIMARY KEY (operation_id, contact_id)
);
CREATE INDEX identity_bonds_contact ON identity_bonds (contact_id);
CREATE INDEX identity_bonds_org ON identity_bonds (org_id);

-- Every contact an operation concerned (kept after an undo): a person's history
-- is the operations on its contacts.
CREATE TABLE identity_operation_contacts (
    operation_id TEXT NOT NULL REFERENCES identity_operations(id) ON DELETE CASCADE,
    contact_id   TEXT NOT NULL,
    PRIMARY KEY (contact_id, operation_id)
);

-- People merged into another by hand: their ids answer 404 naming the survivor.
CREATE TABLE merged_people (
    id            TEXT PRIMARY KEY NOT NULL,
    org_id        TEXT NOT NULL,
    into_id       TEXT NOT NULL,
    operation_id  TEXT NOT NULL REFERENCES identity_operations(id) ON DELETE CASCADE
);

-- Identifier values that never link two contacts (normalised: E.164, a LID,
-- a lowercased email).
CREATE TABLE blocked_identifiers (
    id            TEXT PRIMARY KEY NOT NULL,
    org_id        TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    value         TEXT NOT NULL,
    reason        TEXT NOT NULL,
    operation_id  TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    UNIQUE (org_id, kind, value)
);
