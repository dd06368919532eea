-- A run's deletion check first compares counts: when the connection has as many
-- live contacts as the run saw, nothing unseen is live and there is nothing to
-- mark. Live = all the connection's contacts (counted in its unique index) less
-- its deleted ones, counted in this partial index of deleted contacts only (small,
-- and written only when a contact is deleted or revived).
CREATE INDEX contacts_connection_deleted ON contacts (connection_id) WHERE remote_was_deleted;
