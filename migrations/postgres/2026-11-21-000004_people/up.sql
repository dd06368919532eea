-- People: contacts linked across connections by E.164 phone or WhatsApp LID.
CREATE TABLE people (
    id          TEXT PRIMARY KEY NOT NULL,
    org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
CREATE INDEX people_org_order ON people (org_id, id);
CREATE INDEX contacts_person ON contacts (person_id);
