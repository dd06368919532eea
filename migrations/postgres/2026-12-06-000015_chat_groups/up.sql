-- A group chat's members as the group's own read gave them (`GET /chats/{id}`),
-- for a provider whose chat list names groups without their members: the next
-- sync reads a group again only when its version (what changes with it) differs.
CREATE TABLE chat_groups (
    connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    chat_id       TEXT NOT NULL,
    version       TEXT NOT NULL,
    -- JSON: [[member's contact id, role or null], ...]
    members       TEXT NOT NULL,
    -- the last run that listed the group: after a complete listing, the rows of
    -- groups it did not list are deleted
    seen_run      TEXT NOT NULL,
    PRIMARY KEY (connection_id, chat_id)
);
